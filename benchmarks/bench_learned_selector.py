"""A learned router served by the gateway under load, against ``select: cheapest``.

    python benchmarks/bench_learned_selector.py            # the auto artifact, ~5 minutes
    python benchmarks/bench_learned_selector.py --quick    # knn on TF-IDF, few requests

Trains (or reuses, cached under ``~/.cache/polyroute/bench/``) a router on
dcrouter with ``polyroute train --data dcrouter --router auto`` (``--quick``:
``knn:encoder=tfidf``), then starts ``benchmarks/fake_upstream.py`` and
``polyroute serve`` (one worker) as subprocesses on loopback, once with the
decision ``select: {router: DIR, willingness_to_pay: W}`` and once with
``select: cheapest`` over the same models.  Each gateway gets distinct dcrouter
prompts cut to 600 characters (no prompt is sent twice to one gateway):

a. sequential, one keep-alive connection: p50 / p99 latency;
b. 32 concurrent, closed loop, a bounded number of requests: throughput, p50 / p99;
c. the gateway's CPU time per request in (b) (``/proc/PID/stat``: independent of what
   else the machine runs, unlike throughput) and its resident memory
   (``/proc/PID/status``: VmRSS after the run, VmHWM peak).

Prints a markdown table and writes it, with the command and machine facts, to
``benchmarks/RESULTS_learned_selector.md``.  Every loop is bounded in count and time.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import yaml
from _harness import HERE, LOOPBACK, Server, free_port, machine_facts, pct, start_server

RESULTS = HERE / "RESULTS_learned_selector.md"
HISTORY = "## History"  # this heading and what follows it are kept when the file is rewritten
CACHE = Path.home() / ".cache" / "polyroute" / "bench"
CONCURRENCY = 32
PROMPT_CHARS = 600
PHASE_TIME_CAP_S = 240.0
WARMUP = 64
TARGETS = {"rps": 300.0, "p99_ms": 100.0, "rss_mib": 400.0}
ROUTERS = {"auto": "auto", "knn-tfidf": "knn:encoder=tfidf"}


# --------------------------------------------------------------------------- inputs


def artifact(router: str, retrain: bool) -> Path:
    """The trained artifact for ``router`` (a key of ROUTERS), trained once and cached."""
    out = CACHE / f"dcrouter-{router}"
    if (out / "manifest.json").is_file() and not retrain:
        return out
    argv = [sys.executable, "-m", "polyroute", "train", "--data", "dcrouter",
            "--router", ROUTERS[router], "--out", str(out)]  # fmt: skip
    print("training:", " ".join(argv[1:]), flush=True)
    t0 = time.monotonic()
    subprocess.run(argv, check=True, timeout=1800)
    print(f"trained in {time.monotonic() - t0:.0f} s", flush=True)
    return out


def prompts(n: int) -> list[str]:
    """``n`` distinct dcrouter prompts, each cut to PROMPT_CHARS characters."""
    from polyroute.eval.io import load_dataset, resolve_data_path

    data = load_dataset(resolve_data_path("dcrouter"))
    out = list(dict.fromkeys(p[:PROMPT_CHARS] for p in data.prompts))
    if len(out) < n:
        raise SystemExit(f"dcrouter has {len(out)} distinct prompts, {n} requested")
    return out[:n]


def gateway_config(upstream: str, models: list[str], select: Any) -> dict[str, Any]:
    """``models`` on the fake upstream, with dcrouter's prices, and one decision."""
    from polyroute.eval.io import load_prices, resolve_data_path

    prices = load_prices(resolve_data_path("dcrouter").parent / "models.json")
    entries = {
        m: {"provider": "openai", "base_url": f"{upstream}/v1", "timeout_s": 30,
            "input_price_per_mtok": prices[m].input_price_per_mtok,
            "output_price_per_mtok": prices[m].output_price_per_mtok}
        for m in models
    }  # fmt: skip
    return {"models": entries,
            "decisions": [{"name": "default", "when": True, "models": models,
                           "select": select}]}  # fmt: skip


# --------------------------------------------------------------------------- load


def body(prompt: str) -> bytes:
    return orjson.dumps(
        {"model": "auto", "messages": [{"role": "user", "content": prompt}], "max_tokens": 16}
    )


def _session(limit: int) -> aiohttp.ClientSession:
    connector = aiohttp.TCPConnector(limit=limit, keepalive_timeout=60)
    return aiohttp.ClientSession(
        connector=connector, timeout=aiohttp.ClientTimeout(total=60), trust_env=False
    )


async def _one(session: aiohttp.ClientSession, url: str, data: bytes) -> float:
    t0 = time.perf_counter()
    async with session.post(url, data=data, headers={"content-type": "application/json"}) as r:
        await r.read()
        if r.status != 200:
            raise RuntimeError(f"HTTP {r.status}")
    return (time.perf_counter() - t0) * 1000


async def sequential(url: str, texts: list[str]) -> dict[str, Any]:
    latencies: list[float] = []
    deadline = time.monotonic() + PHASE_TIME_CAP_S
    async with _session(1) as session:
        t0 = time.perf_counter()
        for text in texts:
            if time.monotonic() > deadline:
                break
            latencies.append(await _one(session, url, body(text)))
        elapsed = time.perf_counter() - t0
    return {"n": len(latencies), "errors": 0, "rps": len(latencies) / elapsed,
            "p50": pct(latencies, 50), "p99": pct(latencies, 99)}  # fmt: skip


async def burst(url: str, texts: list[str], concurrency: int) -> dict[str, Any]:
    """Closed loop: ``concurrency`` workers send ``texts`` (each once) as fast as answered."""
    latencies: list[float] = []
    errors = 0
    todo = iter(texts)
    deadline = time.monotonic() + PHASE_TIME_CAP_S

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal errors
        for text in todo:
            if time.monotonic() > deadline:
                return
            try:
                latencies.append(await _one(session, url, body(text)))
            except (TimeoutError, aiohttp.ClientError, RuntimeError):
                errors += 1

    async with _session(concurrency) as session:
        t0 = time.perf_counter()
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
        elapsed = time.perf_counter() - t0
    return {"n": len(latencies), "errors": errors, "rps": len(latencies) / elapsed,
            "p50": pct(latencies, 50), "p99": pct(latencies, 99)}  # fmt: skip


def rss_mib(pid: int) -> tuple[float, float]:
    """(VmRSS, VmHWM) of ``pid`` in MiB."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(value.split()[0]) / 1024
    return fields["VmRSS"], fields["VmHWM"]


@contextlib.contextmanager
def gateway(logs: Path, name: str, config: dict[str, Any]) -> Iterator[Server]:
    path = logs / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    port = free_port()
    argv = [sys.executable, "-m", "polyroute", "serve", "--config", str(path),
            "--host", LOOPBACK, "--port", str(port), "--log-level", "warning"]  # fmt: skip
    server = start_server(name, argv, port, "/readyz", logs, timeout_s=180.0)
    try:
        yield server
    finally:
        server.stop()


def cpu_s(pid: int) -> float:
    """User + system CPU seconds ``pid`` has used (``/proc/PID/stat``, with its threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def drive(url: str, texts: list[str], n_seq: int, pid: int) -> dict[str, Any]:
    warm, seq, rest = texts[:WARMUP], texts[WARMUP : WARMUP + n_seq], texts[WARMUP + n_seq :]
    async with _session(CONCURRENCY) as session:  # connections, lazy imports, first batches
        await asyncio.gather(*(_one(session, url, body(t)) for t in warm))
    out = {"seq": await sequential(url, seq)}
    cpu0 = cpu_s(pid)
    out["burst"] = await burst(url, rest, CONCURRENCY)
    out["cpu_ms"] = (cpu_s(pid) - cpu0) * 1000 / max(1, out["burst"]["n"])
    return out


def measure(logs: Path, name: str, config: dict[str, Any], texts: list[str], n_seq: int) -> Any:
    import uvloop

    with gateway(logs, name, config) as server:
        url = server.url + "/v1/chat/completions"
        out = uvloop.run(drive(url, texts, n_seq, server.popen.pid))
        out["rss"], out["hwm"] = rss_mib(server.popen.pid)
    return out


# --------------------------------------------------------------------------- report


def verdict(ok: bool) -> str:
    return "yes" if ok else "**no**"


def report(label: str, learned: dict[str, Any], cheapest: dict[str, Any]) -> str:
    ls, lb, cs, cb = learned["seq"], learned["burst"], cheapest["seq"], cheapest["burst"]
    c = CONCURRENCY
    rows = [
        ("sequential: req/s", f"{ls['rps']:.0f}", f"{cs['rps']:.0f}", "", ""),
        ("sequential: p50 / p99", f"{ls['p50']:.1f} / {ls['p99']:.1f} ms",
         f"{cs['p50']:.1f} / {cs['p99']:.1f} ms", "", ""),
        (f"{c} concurrent: throughput", f"{lb['rps']:.0f} req/s", f"{cb['rps']:.0f} req/s",
         "≥ 300 req/s", verdict(lb["rps"] >= TARGETS["rps"])),
        (f"{c} concurrent: p50 / p99", f"{lb['p50']:.1f} / {lb['p99']:.1f} ms",
         f"{cb['p50']:.1f} / {cb['p99']:.1f} ms", "p99 ≤ 100 ms",
         verdict(lb["p99"] <= TARGETS["p99_ms"])),
        (f"gateway CPU per request ({c} concurrent)", f"{learned['cpu_ms']:.2f} ms",
         f"{cheapest['cpu_ms']:.2f} ms", "", ""),
        ("gateway RSS after the run (peak)", f"{learned['rss']:.0f} MiB ({learned['hwm']:.0f})",
         f"{cheapest['rss']:.0f} MiB ({cheapest['hwm']:.0f})", "≤ 400 MiB",
         verdict(learned["hwm"] <= TARGETS["rss_mib"])),
    ]  # fmt: skip
    lines = [f"| measure | {label} | select: cheapest | target | met |",
             "| --- | --- | --- | --- | --- |"]  # fmt: skip
    lines += [f"| {' | '.join(r)} |" for r in rows]
    errors = lb["errors"] + cb["errors"]
    counts = (
        f"Requests per gateway: {WARMUP} warm-up (32 concurrent), {ls['n']} sequential, "
        f"{lb['n']} in the {c}-concurrent closed loop (errors: {errors}); every prompt distinct."
    )
    return "\n".join(lines) + "\n\n" + counts + "\n"


def write_results(table: str, argv: list[str]) -> None:
    command = "python benchmarks/bench_learned_selector.py" + "".join(" " + a for a in argv)
    text = "\n".join([
        "# Learned selector under load", "",
        "Produced by:", "", "```", command, "```", "",
        "A router artifact trained on dcrouter, served by `polyroute serve` (one uvicorn worker,",
        "`--log-level warning`) with `select: {router: DIR, willingness_to_pay: W}` in front of",
        "`benchmarks/fake_upstream.py`; compared with the same gateway and `select: cheapest`.",
        f"Prompts: distinct dcrouter prompts cut to {PROMPT_CHARS} characters.  Client: aiohttp,",
        "keep-alive, in a third process on the same cores.  The machine is shared: rerun before",
        "comparing small differences.", "",
        table, "", "Machine:", "", *(f"- {fact}" for fact in machine_facts()), "",
    ])  # fmt: skip
    old = RESULTS.read_text() if RESULTS.is_file() else ""
    kept = old[old.find(HISTORY) :] if HISTORY in old else ""  # hand-kept, survives reruns
    RESULTS.write_text(text + ("\n" + kept if kept else ""))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--router", choices=sorted(ROUTERS), default="auto")
    parser.add_argument("--artifact", type=Path, help="serve this artifact instead of training")
    parser.add_argument("--retrain", action="store_true", help="ignore the cached artifact")
    parser.add_argument("--sequential", type=int, default=300, help="sequential requests")
    parser.add_argument("--burst", type=int, default=4000, help="32-concurrent requests")
    parser.add_argument("--w", type=float, default=0.01, help="willingness_to_pay")
    parser.add_argument(
        "--option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra select option for the learned selector (a number)",
    )
    parser.add_argument("--quick", action="store_true", help="knn on TF-IDF, few requests")
    parser.add_argument("--no-write", action="store_true", help=f"do not write {RESULTS.name}")
    args = parser.parse_args()
    if args.quick:
        args.router, args.sequential, args.burst = "knn-tfidf", 100, 500
    router_dir = args.artifact or artifact(args.router, args.retrain)
    models = json.loads((router_dir / "manifest.json").read_text())["models"]
    learned_select: dict[str, Any] = {"router": str(router_dir), "willingness_to_pay": args.w}
    for option in args.option:
        key, _, value = option.partition("=")
        learned_select[key] = float(value) if "." in value else int(value)
    texts = prompts(WARMUP + args.sequential + args.burst)
    with tempfile.TemporaryDirectory(prefix="polyroute-bench-") as tmp:
        logs = Path(tmp)
        up_port = free_port()
        up_argv = [sys.executable, str(HERE / "fake_upstream.py"), "--port", str(up_port)]
        upstream = start_server("fake-upstream", up_argv, up_port, "/healthz", logs)
        try:
            config = gateway_config(upstream.url, models, learned_select)
            learned = measure(logs, "gateway-learned", config, texts, args.sequential)
            config = gateway_config(upstream.url, models, "cheapest")
            cheapest = measure(logs, "gateway-cheapest", config, texts, args.sequential)
        finally:
            upstream.stop()
    label = f"learned ({args.artifact or args.router})"
    table = report(label, learned, cheapest)
    print(table)
    if not args.no_write:
        write_results(table, sys.argv[1:])
        print(f"written to {RESULTS.relative_to(HERE.parent)}")


if __name__ == "__main__":
    main()
