"""Gateway overhead benchmark: the latency polyroute adds, its throughput, and decision time.

    python benchmarks/bench_gateway.py                 # full run, about 1 minute
    python benchmarks/bench_gateway.py --quick         # a smoke run with few requests

Starts ``benchmarks/fake_upstream.py`` and ``polyroute serve`` (one worker) as
subprocesses on free loopback ports, then measures with aiohttp as the client:

a. sequential latency, direct to the upstream vs through polyroute, one
   keep-alive connection each, interleaved request by request;
b. sequential streaming (time to the last byte) through polyroute vs direct;
c. 32 connections, open loop at a fixed rate below saturation (default 1,000
   req/s for 5 s), direct and through polyroute: added latency under load;
d. 32 concurrent, closed loop, saturated (default 10,000 requests): throughput;
e. the decision time in-process: ``Engine.plan`` (heuristic signals + rules +
   selection) over a mix of prompts, no network.

Prints a markdown table and writes it, with the command and machine facts, to
``benchmarks/RESULTS_gateway.md``.  Every loop is bounded in count and time.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import yaml
from _harness import (
    HERE,
    LOOPBACK,
    PROMPTS,
    Server,
    bench_config,
    chat_body,
    free_port,
    machine_facts,
    pct,
    start_server,
)

RESULTS = HERE / "RESULTS_gateway.md"
PHASE_TIME_CAP_S = 180.0
CONCURRENCY = 32
TARGETS = {"added_p50_ms": 1.0, "added_p99_ms": 3.0, "rps": 1500.0, "decision_us": 50.0}


# --------------------------------------------------------------------------- measurement


def summary(latencies: list[float], errors: int, elapsed: float) -> dict[str, Any]:
    return {
        "n": len(latencies),
        "errors": errors,
        "rps": len(latencies) / elapsed,
        "p50": pct(latencies, 50),
        "p99": pct(latencies, 99),
    }


async def _one(session: aiohttp.ClientSession, url: str, body: bytes) -> tuple[float, float]:
    """One POST; returns (latency ms, polyroute's self-reported overhead ms or nan)."""
    t0 = time.perf_counter()
    async with session.post(url, data=body, headers={"content-type": "application/json"}) as r:
        await r.read()
        if r.status != 200:
            raise RuntimeError(f"{url}: HTTP {r.status}")
        overhead = float(r.headers.get("x-polyroute-overhead-ms", "nan"))
    return (time.perf_counter() - t0) * 1000, overhead


def _session(limit: int) -> aiohttp.ClientSession:
    connector = aiohttp.TCPConnector(limit=limit, force_close=False, keepalive_timeout=60)
    return aiohttp.ClientSession(
        connector=connector, timeout=aiohttp.ClientTimeout(total=30), trust_env=False
    )


async def sequential(direct: str, gateway: str, n: int, stream: bool) -> dict[str, Any]:
    """Interleave direct and gateway requests one by one on two keep-alive connections."""
    lat: dict[str, list[float]] = {"direct": [], "gateway": []}
    overheads: list[float] = []
    urls = {"direct": direct, "gateway": gateway}
    async with _session(1) as s_direct, _session(1) as s_gateway:
        sessions = {"direct": s_direct, "gateway": s_gateway}
        for i in range(min(50, n)):  # warm-up: connections, caches, lazy imports
            for key, url in urls.items():
                await _one(sessions[key], url, chat_body(i, stream))
        deadline = time.monotonic() + PHASE_TIME_CAP_S
        for i in range(n):
            if time.monotonic() > deadline:
                break
            order = ("direct", "gateway") if i % 2 == 0 else ("gateway", "direct")
            for key in order:
                ms, overhead = await _one(sessions[key], urls[key], chat_body(i, stream))
                lat[key].append(ms)
                if key == "gateway":
                    overheads.append(overhead)
    return {"lat": lat, "overhead": overheads}


async def burst(
    url: str, n: int, concurrency: int, time_cap_s: float = PHASE_TIME_CAP_S
) -> dict[str, Any]:
    """``n`` requests (at most ``time_cap_s``) from ``concurrency`` workers on one pool."""
    latencies: list[float] = []
    errors = 0
    counter = iter(range(n))
    deadline = time.monotonic() + time_cap_s

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal errors
        for i in counter:
            if time.monotonic() > deadline:
                return
            try:
                ms, _ = await _one(session, url, chat_body(i))
                latencies.append(ms)
            except (TimeoutError, aiohttp.ClientError, RuntimeError):
                errors += 1

    async with _session(concurrency) as session:
        for i in range(concurrency * 4):  # warm-up
            await _one(session, url, chat_body(i))
        t0 = time.perf_counter()
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
        elapsed = time.perf_counter() - t0
    return summary(latencies, errors, elapsed)


async def paced(url: str, n: int, rate: float, concurrency: int) -> dict[str, Any]:
    """Open loop: request ``i`` is due at ``i / rate`` s; ``concurrency`` connections send them.

    Latency is measured from the due time, so waiting for a free connection counts
    (no coordinated omission).  Below saturation this shows the per-request cost
    under concurrent load rather than the queueing of a saturated server.
    """
    latencies: list[float] = []
    errors = 0
    slots = iter(range(n))
    deadline = time.monotonic() + PHASE_TIME_CAP_S

    async def worker(session: aiohttp.ClientSession, t0: float) -> None:
        nonlocal errors
        for i in slots:
            due = t0 + i / rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            if time.monotonic() > deadline:
                return
            try:
                await _one(session, url, chat_body(i))
                latencies.append((time.perf_counter() - due) * 1000)
            except (TimeoutError, aiohttp.ClientError, RuntimeError):
                errors += 1

    async with _session(concurrency) as session:
        await asyncio.gather(*(_one(session, url, chat_body(i)) for i in range(concurrency)))
        t0 = time.perf_counter() + 0.05
        await asyncio.gather(*(worker(session, t0) for _ in range(concurrency)))
        elapsed = time.perf_counter() - t0
    return summary(latencies, errors, elapsed)


def decision_time(config_path: Path, n: int) -> dict[str, float]:
    """``Engine.plan`` per request (fresh Request each time), in microseconds."""
    from polyroute import Engine, Request, Trace

    engine = Engine.from_file(config_path)
    engine.warmup()
    requests = [Request.chat(PROMPTS[i % len(PROMPTS)]) for i in range(n)]
    for r in requests[:200]:
        engine.plan(Request(r.body), Trace("warm"))
    samples: list[float] = []
    deadline = time.monotonic() + PHASE_TIME_CAP_S
    for r in requests:
        fresh = Request(r.body)
        t0 = time.perf_counter_ns()
        engine.plan(fresh, Trace("bench"))
        samples.append((time.perf_counter_ns() - t0) / 1000)
        if time.monotonic() > deadline:
            break
    t0 = time.perf_counter_ns()
    for r in requests[:2000]:
        engine.route(Request(r.body))
    route_us = (time.perf_counter_ns() - t0) / 1000 / min(len(requests), 2000)
    return {"p50": pct(samples, 50), "p99": pct(samples, 99), "mean": float(np.mean(samples)),
            "route_mean": route_us}  # fmt: skip


# --------------------------------------------------------------------------- report


def verdict(value: float, target: float, higher_is_better: bool = False) -> str:
    ok = value >= target if higher_is_better else value <= target
    return "yes" if ok else "**no**"


def report(args: argparse.Namespace, seq: dict[str, Any], stream_seq: dict[str, Any],
           paced_pair: tuple[dict[str, Any], dict[str, Any]], direct_burst: dict[str, Any],
           gw_burst: dict[str, Any], dec: dict[str, float]) -> str:  # fmt: skip
    d, g = seq["lat"]["direct"], seq["lat"]["gateway"]
    add50, add99 = pct(g, 50) - pct(d, 50), pct(g, 99) - pct(d, 99)
    sd, sg = stream_seq["lat"]["direct"], stream_seq["lat"]["gateway"]
    pd, pg = paced_pair
    padd50, padd99 = pg["p50"] - pd["p50"], pg["p99"] - pd["p99"]
    c = CONCURRENCY
    rate = f"{args.paced_rate:.0f} req/s"
    rows = [
        ("sequential: added latency p50", f"{add50:.3f} ms", "≤ 1 ms", verdict(add50, 1.0)),
        ("sequential: added latency p99", f"{add99:.3f} ms", "≤ 3 ms", verdict(add99, 3.0)),
        ("sequential: direct p50 / p99", f"{pct(d, 50):.3f} / {pct(d, 99):.3f} ms", "", ""),
        ("sequential: via polyroute p50 / p99", f"{pct(g, 50):.3f} / {pct(g, 99):.3f} ms", "", ""),
        ("sequential: x-polyroute-overhead-ms p50 / p99 (self-reported)",
         f"{pct(seq['overhead'], 50):.3f} / {pct(seq['overhead'], 99):.3f} ms", "", ""),
        ("sequential streaming (to last byte): added p50 / p99",
         f"{pct(sg, 50) - pct(sd, 50):.3f} / {pct(sg, 99) - pct(sd, 99):.3f} ms", "", ""),
        (f"{c} concurrent, open loop at {rate}: added latency p50", f"{padd50:.3f} ms",
         "≤ 1 ms", verdict(padd50, 1.0)),
        (f"{c} concurrent, open loop at {rate}: added latency p99", f"{padd99:.3f} ms",
         "≤ 3 ms", verdict(padd99, 3.0)),
        (f"{c} concurrent, open loop at {rate}: direct / via polyroute p50",
         f"{pd['p50']:.3f} / {pg['p50']:.3f} ms", "", ""),
        (f"{c} concurrent, open loop at {rate}: direct / via polyroute p99",
         f"{pd['p99']:.3f} / {pg['p99']:.3f} ms", "", ""),
        (f"{c} concurrent, saturated: throughput via polyroute (1 worker)",
         f"{gw_burst['rps']:.0f} req/s", "≥ 1,500 req/s", verdict(gw_burst["rps"], 1500, True)),
        (f"{c} concurrent, saturated: via polyroute p50 / p99",
         f"{gw_burst['p50']:.2f} / {gw_burst['p99']:.2f} ms", "", ""),
        (f"{c} concurrent, saturated: direct throughput, p50 / p99",
         f"{direct_burst['rps']:.0f} req/s, {direct_burst['p50']:.2f} / "
         f"{direct_burst['p99']:.2f} ms", "", ""),
        ("decision (Engine.plan: signals + rules + selection) p50 / p99",
         f"{dec['p50']:.1f} / {dec['p99']:.1f} µs", "≤ 50 µs", verdict(dec["p50"], 50.0)),
        ("dry run (Engine.route: every signal) mean", f"{dec['route_mean']:.1f} µs", "", ""),
    ]  # fmt: skip
    lines = ["| measure | result | target | met |", "| --- | --- | --- | --- |"]
    lines += [f"| {a} | {b} | {c} | {e} |" for a, b, c, e in rows]
    errors = sum(x["errors"] for x in (pd, pg, direct_burst, gw_burst))
    counts = (
        f"Requests: {len(d)} sequential pairs, {len(sd)} streaming pairs, "
        f"{pg['n']} + {pd['n']} open-loop, {gw_burst['n']} + {direct_burst['n']} saturated "
        f"(errors: {errors}); {args.decisions} in-process decisions.  Saturated latency is "
        f"queueing ({c} in flight / throughput), not per-request cost."
    )
    return "\n".join(lines) + "\n\n" + counts + "\n"


def write_results(table: str, argv: list[str]) -> None:
    command = "python benchmarks/bench_gateway.py" + ("" if not argv else " " + " ".join(argv))
    text = "\n".join([
        "# Gateway benchmark results", "",
        "Produced by:", "", "```", command, "```", "",
        "Fake upstream: `benchmarks/fake_upstream.py` (raw ASGI, uvicorn + uvloop + httptools).",
        "Gateway: `polyroute serve` (one uvicorn worker, default log level: one JSON access-log",
        "line per request).  Client: aiohttp, keep-alive, in a third process on the same 2 cores.",
        "Added latency = via-polyroute percentile minus direct percentile.",
        "The machine is shared with other work (see the load average below): run to run,",
        "throughput and tail latencies here vary by about ±30%; rerun before comparing.", "",
        table, "", "Machine:", "", *(f"- {fact}" for fact in machine_facts()), "",
    ])  # fmt: skip
    RESULTS.write_text(text)


@dataclass
class Stack:
    upstream: str
    gateway: str
    config_path: Path
    gateway_pid: int


@contextlib.contextmanager
def servers(logs: Path, delay_s: float, log_level: str = "info") -> Iterator[Stack]:
    """The fake upstream and ``polyroute serve`` in front of it; both stopped on exit."""
    started: list[Server] = []
    try:
        up_port = free_port()
        up_argv = [sys.executable, str(HERE / "fake_upstream.py"), "--port", str(up_port)]
        if delay_s:
            up_argv += ["--delay-s", str(delay_s)]
        upstream = start_server("fake-upstream", up_argv, up_port, "/healthz", logs)
        started.append(upstream)
        config_path = logs / "bench.yaml"
        config_path.write_text(yaml.safe_dump(bench_config(upstream.url), sort_keys=False))
        gw_port = free_port()
        gw_argv = [sys.executable, "-m", "polyroute", "serve", "--config", str(config_path),
                   "--host", LOOPBACK, "--port", str(gw_port),
                   "--log-level", log_level]  # fmt: skip
        gateway = start_server("gateway", gw_argv, gw_port, "/readyz", logs)
        started.append(gateway)
        yield Stack(upstream.url, gateway.url, config_path, gateway.popen.pid)
    finally:
        for server in reversed(started):
            server.stop()


async def run_network(args: argparse.Namespace, direct: str, gateway: str) -> tuple[Any, ...]:
    chat = "/v1/chat/completions"
    seq = await sequential(direct + chat, gateway + chat, args.sequential, stream=False)
    stream_seq = await sequential(direct + chat, gateway + chat, args.streaming, stream=True)
    n_paced = int(args.paced_rate * args.paced_s)
    direct_paced = await paced(direct + chat, n_paced, args.paced_rate, CONCURRENCY)
    gw_paced = await paced(gateway + chat, n_paced, args.paced_rate, CONCURRENCY)
    direct_burst = await burst(direct + chat, args.burst, CONCURRENCY)
    gw_burst = await burst(gateway + chat, args.burst, CONCURRENCY)
    return seq, stream_seq, (direct_paced, gw_paced), direct_burst, gw_burst


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sequential", type=int, default=2000, help="sequential request pairs")
    parser.add_argument("--streaming", type=int, default=500, help="sequential streaming pairs")
    parser.add_argument("--burst", type=int, default=10000, help="requests per 32-way burst")
    parser.add_argument("--paced-rate", type=float, default=1000.0, help="open-loop req/s")
    parser.add_argument("--paced-s", type=float, default=5.0, help="open-loop duration")
    parser.add_argument("--decisions", type=int, default=20000, help="in-process decisions")
    parser.add_argument("--delay-s", type=float, default=0.0, help="fake upstream delay")
    parser.add_argument(
        "--log-level", default="info", help="gateway --log-level (info: one access line/request)"
    )
    parser.add_argument("--quick", action="store_true", help="few requests (smoke test)")
    parser.add_argument("--no-write", action="store_true", help=f"do not write {RESULTS.name}")
    args = parser.parse_args()
    if args.quick:
        args.sequential, args.streaming, args.burst, args.decisions = 200, 50, 1000, 2000
        args.paced_s = 1.0
    import uvloop

    with tempfile.TemporaryDirectory(prefix="polyroute-bench-") as tmp:
        logs = Path(tmp)
        with servers(logs, args.delay_s, args.log_level) as stack:
            results = uvloop.run(run_network(args, stack.upstream, stack.gateway))
            seq, stream_seq, paced_pair, direct_burst, gw_burst = results
        dec = decision_time(stack.config_path, args.decisions)
    table = report(args, seq, stream_seq, paced_pair, direct_burst, gw_burst, dec)
    print(table)
    if not args.no_write:
        write_results(table, sys.argv[1:])
        print(f"written to {RESULTS.relative_to(HERE.parent)}")


if __name__ == "__main__":
    main()
