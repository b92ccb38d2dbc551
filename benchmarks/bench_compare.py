"""Side by side, in one run: the same fast upstream direct, behind polyroute, behind LiteLLM.

    python benchmarks/bench_compare.py                # full run, about 5-10 minutes
    python benchmarks/bench_compare.py --quick        # smoke run: small counts, no 5,000 burst
    python benchmarks/bench_compare.py --no-litellm   # polyroute vs direct only

One benchmark measures at a time: the script holds ``/tmp/polyroute-bench.lock``
(taking it itself, or inheriting it from ``flock /tmp/polyroute-bench.lock python ...``).

The upstream is ``benchmarks/fake_upstream.py`` (raw ASGI on uvicorn: fixed answers,
no model).  In front of it, each on a free 127.0.0.1 port with one worker:

* ``polyroute serve`` with ``model="auto"`` and the keyword rule of
  ``bench_gateway.py`` (math prompts -> ``large``, the rest -> ``small``; both
  models on the same upstream);
* LiteLLM's proxy (``litellm --config``), installed by this script into its own
  throw-away virtual environment (``~/.cache/polyroute/bench/litellm-venv``,
  reused when present): models ``small`` and ``large`` on the same upstream, no
  master key (its local-development switch), retries off (``num_retries: 0`` in
  ``litellm_settings`` and ``router_settings``), no callbacks, the bundled cost
  map (``LITELLM_LOCAL_MODEL_COST_MAP=True``, no internet), telemetry off.
  LiteLLM has no keyword rule, so the client names the model polyroute would pick.

Measured, from an aiohttp client in this process (uvloop):

1. sequential latency, one keep-alive connection per target, interleaved request
   by request (direct, polyroute, LiteLLM, rotating the order each round);
   added latency = percentile through a proxy - the same percentile direct;
2. 32 concurrent, closed loop, a bounded burst per target: throughput, p50/p99,
   server CPU per request;
3. errors: any non-200, malformed body, stream without ``[DONE]``, timeout or
   connection error, in every phase;
4. resident memory: VmRSS summed over the server's process group (``/proc``),
   idle after start-up and after the load;
5. streaming time to first byte (first body chunk of a ``stream=true`` chat),
   sequential and interleaved like 1;
6. N requests (default 5,000) in flight at once against a second upstream that
   answers after 1.5 s, from one session with an unlimited connection pool:
   every one must succeed through polyroute, and its RSS must stay flat over
   repeated bursts: RSS after burst 2 within 10 % of RSS after burst 1, and
   (with 3 or more bursts) after the last burst within 10 % of the one before.
   LiteLLM gets one such burst (``--litellm-inflight-bursts``); every burst is
   bounded by ``--inflight-cap-s``.

Prints a markdown table with the ratios and PASS/FAIL against the targets
(polyroute's added latency at p50 and p99 at least 10x lower than LiteLLM's,
throughput at least 10x, zero errors) and writes it, with the command, machine
facts and versions, to ``benchmarks/RESULTS_compare.md``.  Every loop is bounded
in count and time; every server is stopped (its process group: SIGTERM, then
SIGKILL), also on errors and Ctrl-C.

This file is the command line and the order of the phases; beside it are the servers
and LiteLLM's venv (``_compare_targets.py``), the load phases and their HTTP client
(``_compare_load.py``, ``_compare_http.py``), ``/proc`` and the benchmark lock
(``_compare_proc.py``), and the tables, verdicts and results file (``_compare_report.py``).
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

from _compare_load import (
    CONCURRENCY,
    Target,
    closed_loop,
    inflight_burst,
    make_target,
    sequential,
    warm_up,
)
from _compare_proc import PeakSampler, bench_lock, group_usage, raise_nofile
from _compare_report import RESULTS, Run, details, render, write_results
from _compare_targets import DEFAULT_VENV, Fleet, LiteLLMUnavailable, ensure_litellm, fleet
from _harness import HERE, Server

SETTLE_S = 3.0
LOCK = Path("/tmp/polyroute-bench.lock")
LOCK_WAIT_S = 1800.0


def _on_sigterm(signum: int, frame: object) -> NoReturn:
    raise KeyboardInterrupt(f"signal {signum}")


def litellm_failed(run: Run, problem: str) -> None:
    run.litellm_problem = problem.strip().splitlines()[0][:300] if problem.strip() else "unknown"
    print(
        f"\n*** LiteLLM unavailable: {problem}\n*** continuing with polyroute vs direct\n",
        flush=True,
    )


def phase_fast(run: Run, fl: Fleet) -> None:
    """Phases 1-5 against the fast upstream; the servers are stopped at the end."""
    import uvloop

    args = run.args
    upstream = fl.upstream("upstream")
    gateway = fl.polyroute("polyroute", upstream)
    servers = {"direct": upstream, "polyroute": gateway}
    if run.litellm_problem is None:
        try:
            servers["litellm"] = fl.litellm("litellm", upstream)
        except LiteLLMUnavailable as exc:
            litellm_failed(run, f"LiteLLM proxy did not start: {exc}")
    run.rss_idle = {name: group_usage(s.pgid) for name, s in servers.items()}
    targets = [make_target(name, servers[name]) for name in run.names]

    quiet_s = args.quiet_ms / 1000

    async def measure() -> None:
        print(f"sequential: {args.sequential} interleaved rounds ...", flush=True)
        run.seq = await sequential(targets, args.sequential, False, run.errors, quiet_s)
        print(f"streaming: {args.streaming} interleaved rounds ...", flush=True)
        run.stream = await sequential(targets, args.streaming, True, run.errors, quiet_s)
        for t in targets:
            print(f"{CONCURRENCY} concurrent: {args.burst} requests to {t.name} ...", flush=True)
            run.loops[t.name] = await closed_loop(t, args.burst, run.errors)

    uvloop.run(measure())
    time.sleep(args.settle_s)
    run.rss_loaded = {name: group_usage(s.pgid) for name, s in servers.items()}
    for server in [*servers.values()][::-1]:
        fl.stop(server)


def phase_inflight(run: Run, fl: Fleet) -> None:
    """Phase 6: ``--inflight`` requests at once against an upstream that takes ``--delay-s``."""
    args = run.args
    upstream = fl.upstream("slow-upstream", args.inflight_delay_s)
    subjects: list[tuple[str, Callable[[], Server], int]] = [
        ("direct", lambda: upstream, 1),
        ("polyroute", lambda: fl.polyroute("polyroute-slow", upstream), args.inflight_bursts),
    ]
    if run.litellm_problem is None:
        subjects.append(
            ("litellm", lambda: fl.litellm("litellm-slow", upstream), args.litellm_inflight_bursts)
        )
    for name, start, bursts in subjects:
        try:
            server = start()
        except LiteLLMUnavailable as exc:
            run.notes.append(f"LiteLLM for the in-flight test did not start: {exc}")
            continue
        run.inflight[name] = inflight_subject(run, name, server, upstream, bursts)
        if server is not upstream:
            fl.stop(server)
    fl.stop(upstream)


def inflight_subject(
    run: Run, name: str, server: Server, upstream: Server, bursts: int
) -> dict[str, Any]:
    """Warm ``server`` up, then up to ``bursts`` in-flight bursts; RSS, peaks and fds of each."""
    import uvloop

    args = run.args
    target = make_target(name, server)
    record: dict[str, Any] = {
        "bursts": [],
        "rss": [],
        "peak_rss": [],
        "peak_fds": [],
        "upstream_peak_fds": [],
    }
    uvloop.run(warm_up(target, 16, run.errors, "in-flight warm-up"))
    time.sleep(args.settle_s)
    record["rss"].append(group_usage(server.pgid))
    groups = {"server": server.pgid, "upstream": upstream.pgid}
    for b in range(bursts):
        print(
            f"in flight: {args.inflight} at once to {name}, burst {b + 1}/{bursts} ...",
            flush=True,
        )
        result, sampler = sampled_burst(run, target, groups, b)
        time.sleep(args.settle_s)
        record["bursts"].append(result)
        record["rss"].append(group_usage(server.pgid))
        record["peak_rss"].append(sampler.peak_rss_kib["server"] / 1024)
        record["peak_fds"].append(sampler.peak_fds["server"])
        record["upstream_peak_fds"].append(sampler.peak_fds["upstream"])
        print(
            f"  {result['ok']}/{result['n']} ok in {result['elapsed']:.2f} s, "
            f"errors {result['errors'] or 0}",
            flush=True,
        )
        if result["capped"]:
            cap = f"{args.inflight_cap_s:.0f} s"
            run.notes.append(f"{name}: in-flight burst {b + 1} hit the {cap} cap; later skipped")
            break
    return record


def sampled_burst(
    run: Run, target: Target, groups: dict[str, int], b: int
) -> tuple[dict[str, Any], PeakSampler]:
    """In-flight burst ``b`` (0-based) under a ``PeakSampler``; adds each group's CPU seconds."""
    import uvloop

    args = run.args
    cpu0 = {k: group_usage(g).cpu_s for k, g in groups.items()}
    with PeakSampler(groups) as sampler:
        result = uvloop.run(
            inflight_burst(
                target,
                args.inflight,
                args.inflight_cap_s,
                run.errors,
                f"{args.inflight} in flight, burst {b + 1}",
            )
        )
    result["cpu_s"] = {k: group_usage(g).cpu_s - cpu0[k] for k, g in groups.items()}
    return result, sampler


# --------------------------------------------------------------------------- main


# full run, --quick (None: the --quick run skips the in-flight test unless --inflight is given)
COUNTS = {
    "sequential": (2000, 100),
    "streaming": (500, 30),
    "burst": (3000, 300),
    "inflight": (5000, 0),
    "inflight_bursts": (3, 2),
    "litellm_inflight_bursts": (1, 1),
}


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--sequential", type=int, help="interleaved sequential rounds (2000)")
    p.add_argument("--streaming", type=int, help="interleaved streaming rounds (500)")
    p.add_argument("--burst", type=int, help="requests per 32-concurrent burst (3000)")
    p.add_argument("--inflight", type=int, help="requests at once, slow upstream (5000; 0 skips)")
    p.add_argument("--inflight-bursts", type=int, help="in-flight bursts via polyroute (3)")
    p.add_argument("--litellm-inflight-bursts", type=int, help="in-flight bursts via LiteLLM (1)")
    p.add_argument("--inflight-delay-s", type=float, default=1.5, help="slow upstream's delay")
    p.add_argument("--inflight-cap-s", type=float, default=180.0, help="time cap of one burst")
    p.add_argument("--quiet-ms", type=float, default=0.5, help="quiet wait after sequential reqs")
    p.add_argument("--settle-s", type=float, default=SETTLE_S, help="idle time before RSS reads")
    p.add_argument("--no-litellm", action="store_true", help="polyroute vs direct only")
    p.add_argument("--litellm-venv", type=Path, default=DEFAULT_VENV, help="LiteLLM's venv")
    p.add_argument("--litellm-spec", default="litellm[proxy]", help="pip spec to install")
    p.add_argument("--logs", type=Path, default=None, help="keep server logs here")
    p.add_argument("--quick", action="store_true", help="smoke run: small counts, no in-flight")
    p.add_argument("--no-lock", action="store_true", help=f"do not take {LOCK}")
    p.add_argument("--no-write", action="store_true", help=f"do not write {RESULTS.name}")
    args = p.parse_args()
    for key, (full, quick) in COUNTS.items():
        if getattr(args, key) is None:
            setattr(args, key, quick if args.quick else full)
    return args


def main() -> None:
    args = parse_args()
    signal.signal(signal.SIGTERM, _on_sigterm)
    soft, _ = raise_nofile()
    if args.inflight and soft < 3 * args.inflight + 1000:
        print(f"warning: RLIMIT_NOFILE {soft} may be too low for {args.inflight} in flight")
    run = Run(args)
    with contextlib.ExitStack() as stack:
        if not args.no_lock:
            run.lock = stack.enter_context(bench_lock(LOCK, LOCK_WAIT_S))
        measure(run)
    table = render(run)
    print()
    print(table)
    print("\n".join(details(run)))
    print(f"\nthe run took {run.elapsed_s:.0f} s")
    if not args.no_write:
        write_results(run, table)
        print(f"written to {RESULTS.relative_to(HERE.parent)}")


def measure(run: Run) -> None:
    args = run.args
    t0 = time.monotonic()
    if args.no_litellm:
        run.litellm_problem = "skipped (--no-litellm)"
    else:
        try:
            run.litellm_versions = ensure_litellm(args.litellm_venv, args.litellm_spec)
        except LiteLLMUnavailable as exc:
            litellm_failed(run, f"LiteLLM could not be installed: {exc}")
    with contextlib.ExitStack() as stack:
        if args.logs is None:
            logs = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-cmp-")))
        else:
            logs = args.logs
            logs.mkdir(parents=True, exist_ok=True)
        fl = stack.enter_context(fleet(logs, args.litellm_venv))
        phase_fast(run, fl)
        if args.inflight:
            phase_inflight(run, fl)
    run.elapsed_s = time.monotonic() - t0


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt as exc:
        sys.exit(f"interrupted ({exc or 'Ctrl-C'}); every server this run started was stopped")
