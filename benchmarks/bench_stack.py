"""HTTP server x upstream client: is uvicorn + httptools + aiohttp the fastest sensible stack?

    flock /tmp/polyroute-bench.lock python benchmarks/bench_stack.py           # ~12 minutes
    flock /tmp/polyroute-bench.lock python benchmarks/bench_stack.py --quick   # ~40 seconds

The smallest honest relay -- receive a POST of an OpenAI chat body, parse it
with orjson, replace ``model``, forward it to ``benchmarks/fake_upstream.py``
over a pooled keep-alive connection, return the upstream's status and JSON body
-- is run on every combination of

- server (one worker each): uvicorn + httptools + uvloop (the gateway's),
  uvicorn + h11 + uvloop, granian (ASGI interface, uvloop; as shipped, and with
  ``task_impl=rust, runtime_mode=st``, its best setting in a trial), hypercorn (uvloop);
- upstream client: aiohttp as the gateway configures it (``TCPConnector(limit=0)``),
  aiohttp with the default connector (``limit=100``), httpx.AsyncClient (HTTP/1.1,
  pooled transport with room for every concurrent connection);

as raw ASGI, plus the same relay written as a Starlette route (the gateway's
framework) on uvicorn and granian, plus the real gateway: ``python -m polyroute
serve`` (the issue's config, one JSON access-log line per request) and the same
Starlette app (``polyroute.server.create_app``) served by granian, unchanged.

The candidates live in a throw-away venv, ``~/.cache/polyroute/bench/stack-venv``
(created on first use with ``--system-site-packages`` so that uvicorn, aiohttp,
httpx, orjson and uvloop are the very versions the gateway runs with; granian and
hypercorn are pip-installed into it), and every relay runs as a subprocess of
that venv's python, in its own session, on 127.0.0.1, stopped by process group
(SIGTERM, then SIGKILL).

For every stack and round, one aiohttp client (this process, uvloop) measures

a. sequential latency on one keep-alive connection, interleaved request by
   request with the same request sent straight to the upstream: added latency =
   percentile via the relay - the same percentile direct (samples pooled over
   rounds), and the relay's CPU time per request, one request at a time;
b. a saturated closed loop, 32 concurrent, a bounded number of requests:
   throughput, latency, errors, and the CPU time the relay's process group, the
   upstream and the client each spent per request (from /proc: less sensitive to
   the machine's other load than throughput).

Stacks are restarted every round and the order is rotated between rounds (default
5 rounds); the table shows medians over rounds and the throughput's range.  It is printed and
written, with the command and machine facts, to ``benchmarks/RESULTS_stack.md``.
Every phase is bounded in count and time.

The relay itself runs as ``<venv python> bench_stack.py relay ...``: this file
hands that mode to ``_stack_relays.py``.  Nothing at module level here or in the
``_stack_*`` modules imports a third-party package, so that mode needs only the venv.

This file is the command line and the order of the rounds; beside it are the relay
apps, upstream clients and servers (``_stack_relays.py``), the stacks and their venv
(``_stack_candidates.py``), the load phases (``_stack_load.py``), and the table and
results file (``_stack_report.py``).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _stack_candidates import STACKS, Stack, ensure_venv, venv_python
from _stack_load import saturated, sequential
from _stack_relays import CHAT, HERE, relay_main
from _stack_report import RESULTS, Tally, report, write_results


def start_stack(stack: Stack, upstream: str, config: Path, logs: Path, tag: str) -> Any:
    from _harness import LOOPBACK, free_port, start_server

    port = free_port()
    if stack.server == "polyroute-serve":
        argv = [sys.executable, "-m", "polyroute", "serve", "--config", str(config),
                "--host", LOOPBACK, "--port", str(port), "--log-level", "info"]  # fmt: skip
        return start_server(f"{tag}-polyroute", argv, port, "/readyz", logs)
    argv = [str(venv_python()), str(Path(__file__).resolve()), "relay", "--server", stack.server,
            "--client", stack.client, "--app", stack.app, "--upstream", upstream,
            "--config", str(config), "--log-level", "info", "--port", str(port)]  # fmt: skip
    ready = "/readyz" if stack.app == "polyroute" else "/healthz"
    name = f"{tag}-{stack.key.replace('/', '_')}"
    return start_server(name, argv, port, ready, logs, timeout_s=60.0)


async def measure(
    stack: Stack, server: Any, upstream: Any, args: argparse.Namespace
) -> dict[str, Any]:
    seq = await sequential(upstream.url + CHAT, server.url + CHAT, args.sequential, server.pgid)
    pgids = {"relay": server.pgid, "upstream": upstream.pgid}
    sat = await saturated(server.url + CHAT, args.burst, pgids)
    return {**seq, **sat}


def run_all(args: argparse.Namespace, stacks: list[Stack]) -> tuple[list[Tally], Tally, int]:
    import uvloop
    import yaml
    from _harness import bench_config, free_port, start_server

    tallies = {s.key: Tally(s) for s in stacks}
    direct = Tally(Stack("direct", "", "", "", "upstream direct (no relay): the ceiling"))
    deadline = time.monotonic() + args.max_minutes * 60
    rounds_done = 0
    with tempfile.TemporaryDirectory(prefix="polyroute-stack-") as tmp:
        logs = Path(tmp)
        up_port = free_port()
        up_argv = [sys.executable, str(HERE / "fake_upstream.py"), "--port", str(up_port)]
        upstream = start_server("fake-upstream", up_argv, up_port, "/healthz", logs)
        try:
            config = logs / "bench.yaml"
            config.write_text(yaml.safe_dump(bench_config(upstream.url), sort_keys=False))
            for rnd in range(args.rounds):
                if time.monotonic() > deadline:
                    print(f"time budget ({args.max_minutes} min) spent: stopping", flush=True)
                    break
                shift = rnd % len(stacks)
                order = stacks[shift:] + stacks[:shift]
                ref = uvloop.run(saturated(upstream.url + CHAT, args.burst,
                                           {"upstream": upstream.pgid}))  # fmt: skip
                _add_saturated(direct, ref)
                print(f"round {rnd + 1}/{args.rounds}: direct {ref['rps']:.0f} req/s", flush=True)
                for stack in order:
                    if time.monotonic() > deadline:
                        break
                    _run_one(tallies[stack.key], stack, upstream, config, logs, args, rnd)
                rounds_done += 1
            _check_access_logs(logs, tallies)
        finally:
            upstream.stop()
    return list(tallies.values()), direct, rounds_done


def _run_one(tally: Tally, stack: Stack, upstream: Any, config: Path, logs: Path,
             args: argparse.Namespace, rnd: int) -> None:  # fmt: skip
    import uvloop

    if tally.failure:
        return
    try:
        server = start_stack(stack, upstream.url, config, logs, f"r{rnd}")
    except SystemExit as exc:  # did not start: keep the log's tail as the reason
        tally.failure = str(exc).splitlines()[-1][:200] if str(exc) else "did not start"
        print(f"  {stack.key}: FAILED to start: {exc}", flush=True)
        return
    try:
        result = uvloop.run(measure(stack, server, upstream, args))
    except Exception as exc:
        tally.failure = f"{type(exc).__name__}: {exc}"[:200]
        print(f"  {stack.key}: FAILED: {tally.failure}", flush=True)
        return
    finally:
        server.stop()
    tally.direct_ms += result["direct_ms"]
    tally.relay_ms += result["relay_ms"]
    tally.errors += result["seq_errors"]
    tally.seq_cpu_us.append(result["seq_cpu_us"])
    _add_saturated(tally, result)
    from _harness import pct

    add50 = pct(result["relay_ms"], 50) - pct(result["direct_ms"], 50)
    print(f"  {stack.key:38} +{add50:.3f} ms p50   {result['rps']:6.0f} req/s   relay CPU/req "
          f"{result['seq_cpu_us']:.0f} / {result['cpu_us']['relay']:.0f} µs   errors "
          f"{result['errors'] + result['seq_errors']}", flush=True)  # fmt: skip


def _add_saturated(tally: Tally, result: dict[str, Any]) -> None:
    tally.rps.append(result["rps"])
    tally.sat_ms += result["latencies"]
    tally.cpu_us.append(result["cpu_us"])
    tally.errors += result["errors"]
    tally.requests += result["n"]


def _check_access_logs(logs: Path, tallies: dict[str, Tally]) -> None:
    """Both polyroute rows must have written their access log (same work on both servers)."""
    for key in ("polyroute-serve", "granian/aiohttp/polyroute"):
        tally = tallies.get(key)
        if tally is None or tally.failure or not tally.requests:
            continue
        pattern = "*polyroute.log" if key == "polyroute-serve" else "*granian_aiohttp_polyroute.log"
        lines = sum(p.read_text(errors="replace").count("\n") for p in logs.glob(pattern))
        if lines < tally.requests:
            tally.failure = f"access log has {lines} lines for {tally.requests} requests"


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "relay":
        relay_main(sys.argv[2:])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="rounds over every stack")
    parser.add_argument("--sequential", type=int, default=1500, help="sequential pairs per round")
    parser.add_argument("--burst", type=int, default=5000, help="saturated requests per round")
    parser.add_argument("--only", default="", help="comma-separated substrings of stack keys")
    parser.add_argument("--max-minutes", type=float, default=30.0, help="overall time budget")
    parser.add_argument("--quick", action="store_true", help="1 round, few requests (smoke)")
    parser.add_argument("--no-write", action="store_true", help=f"do not write {RESULTS.name}")
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.sequential, args.burst = 1, 300, 1500
    started = time.monotonic()
    versions = ensure_venv()
    stacks = [s for s in STACKS if not args.only or any(k in s.key for k in args.only.split(","))]
    skipped = [s for s in stacks if not all(versions.get(m) for m in s.needs)]
    for s in skipped:
        print(f"skipped (not in the venv: {', '.join(s.needs)}): {s.key}", flush=True)
    stacks = [s for s in stacks if s not in skipped]
    tallies, direct, rounds = run_all(args, stacks)
    table = report(tallies, direct, rounds)
    took = time.monotonic() - started
    print(table)
    print(f"took {took / 60:.1f} minutes")
    if not args.no_write:
        write_results(table, sys.argv[1:], versions, took)
        print(f"written to {RESULTS.relative_to(HERE.parent)}")


if __name__ == "__main__":
    main()
