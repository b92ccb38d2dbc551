"""The gateway with every signal on: signal latency, throughput, memory and start-up.

    python benchmarks/bench_signal_gateway.py            # ~3-6 minutes on 2 cores
    python benchmarks/bench_signal_gateway.py --quick    # fewer requests, no cold start
    python benchmarks/bench_signal_gateway.py --domain-model DIR   # another domain model
    python benchmarks/bench_signal_gateway.py --jailbreak-model DIR   # another jailbreak model
    python benchmarks/bench_signal_gateway.py --rate 150 --no-write   # open loop: latency at a load

The jailbreak and domain signals run the shipped models (or ``--domain-model DIR``);
the encoder each one names (``static`` or ``minilm``, from its manifest) is printed
with the results.  Four measurements, one after the other (never two at once):

a. **in-process**: an :class:`~polyroute.engine.Engine` built from a config with the
   jailbreak, domain, similarity and pii signals and one decision per signal (so every
   signal is read unless an earlier rule fires); ``await engine.adecide(request,
   trace)`` timed per prompt (distinct dcrouter prompts cut to at most 128 MiniLM
   tokens), once with ``similarity`` on ``static`` and once on ``minilm``; with no
   signals as the floor.  p50 / p99 wall time, CPU per request, and how many signals
   were computed.  A row with a MiniLM signal gets ``--minilm-prompts`` prompts.
b. **gateway under load**: ``benchmarks/fake_upstream.py`` and ``polyroute serve`` (one
   worker) as subprocesses on loopback; 32 concurrent closed-loop clients send distinct
   prompts (no cache), at most BURST_CAP_S seconds per gateway.  Gateways: no signals
   (the baseline), jailbreak + domain + similarity, and every signal (+ pii, +
   difficulty from a ``knn:encoder=static`` router trained once on the bundled
   dcrouter, ~12 s, cached under ``~/.cache/polyroute/bench/``); ``--minilm-gateway``
   adds one with similarity on ``minilm``.  Throughput, p50 / p99, gateway CPU per
   request, and whether torch got loaded (``libtorch`` in ``/proc/PID/maps``).
c. **memory**: VmRSS after the run and VmHWM (peak) of each gateway (``/proc``).
d. **start-up**: process start to ``GET /readyz`` 200 (polled every 0.1 s), with the
   embedding cache as it is and, unless ``--quick`` / ``--no-cold``, once with an empty
   ``POLYROUTE_CACHE_DIR`` (as on the first start after ``scripts/install``, which
   neither exports the MiniLM ONNX graph nor distils the static table).

Prints a markdown report and writes it, with the command and machine facts, to
``benchmarks/RESULTS_signal_gateway.md`` (a ``## History`` section there is kept).
Every loop is bounded in count and time.
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
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import yaml
from _harness import HERE, LOOPBACK, Server, free_port, machine_facts, pct, start_server
from bench_learned_selector import _one, _session, body, cpu_s, rss_mib

RESULTS = HERE / "RESULTS_signal_gateway.md"
HISTORY = "## History"  # this heading and what follows it are kept when the file is rewritten
ROUTER = Path.home() / ".cache" / "polyroute" / "bench" / "dcrouter-knn-static"
#: options of the jailbreak signal (``--jailbreak-variant`` adds ``variant``)
JAILBREAK: dict[str, Any] = {"type": "jailbreak"}
MAX_TOKENS = 128
CONCURRENCY = 32
WARMUP = 200
START_TIMEOUT_S = 240.0
NOWHERE = "http://127.0.0.1:9"  # in-process engines never call their models
BURST_CAP_S = 60.0  # a closed loop stops after this long, whatever is left
#: ``--rate R``: an open loop at R requests/s instead of the closed loop (empty: closed)
RATE: list[float] = []
TARGETS = {"signals_p50_ms": 5.0, "rps": 300.0, "rss_mib": 400.0, "start_s": 10.0}
MATHS = [
    "Prove that the square root of two is irrational.",
    "Solve the equation 3x + 7 = 22 for x.",
    "What is the derivative of x^3 sin(x)?",
    "Compute the integral of 1/(1+x^2) from 0 to 1.",
    "How many ways can 5 people sit around a round table?",
]


# --------------------------------------------------------------------------- inputs


def prompts(n: int) -> list[str]:
    """``n`` distinct dcrouter prompts, each cut to at most MAX_TOKENS MiniLM tokens."""
    from polyroute.embed_static import tokenizer
    from polyroute.eval.io import load_dataset, resolve_data_path

    tok = tokenizer()
    out: dict[str, None] = {}
    for text in load_dataset(resolve_data_path("dcrouter")).prompts:
        offsets = tok.encode(text, add_special_tokens=False).offsets
        cut = text if len(offsets) <= MAX_TOKENS else text[: offsets[MAX_TOKENS - 1][1]]
        if cut.strip():
            out[cut] = None
        if len(out) == n:
            return list(out)
    raise SystemExit(f"dcrouter has {len(out)} distinct prompts, {n} requested")


def signals(kind: str, domain_model: str | None = None) -> dict[str, Any]:
    """The ``signals:`` block of ``kind``: none, guards, inproc (+ pii), all (+ pii,
    difficulty), minilm (inproc with similarity on minilm)."""
    if kind == "none":
        return {}
    sim_encoder = "minilm" if kind == "minilm" else "static"
    topic = {"type": "domain"} | ({"model": domain_model} if domain_model else {})
    out: dict[str, Any] = {
        "jailbreak": dict(JAILBREAK),
        "topic": topic,
        "maths": {"type": "similarity", "examples": MATHS, "encoder": sim_encoder},
    }
    if kind in ("all", "minilm", "inproc"):
        out["pii"] = {"type": "pii"}
    if kind == "all":
        out["hard"] = {"type": "difficulty", "router": str(ROUTER)}
    return out


def config(upstream: str, kind: str, domain_model: str | None = None) -> dict[str, Any]:
    """Two models on ``upstream``; one decision per signal (each reads it), then a default."""
    model = {"provider": "openai", "base_url": f"{upstream}/v1", "timeout_s": 30}
    sigs = signals(kind, domain_model)
    rules = {
        "jailbreak": ("guard", "jailbreak"),
        "pii": ("private", "pii"),
        "hard": ("hard", {"signal": "hard", "lt": 0.2}),
        "maths": ("maths", "maths"),
        "topic": ("support", {"signal": "topic", "in": ["banking", "credit_cards"]}),
    }
    decisions: list[dict[str, Any]] = [
        {"name": name, "priority": 50 - 10 * i, "when": when, "models": ["large", "small"],
         "select": "static"}
        for i, (sig, (name, when)) in enumerate(rules.items()) if sig in sigs
    ]  # fmt: skip
    decisions.append({"name": "default", "when": True, "models": ["small", "large"],
                      "select": "cheapest"})  # fmt: skip
    return {
        "models": {
            "small": {**model, "input_price_per_mtok": 0.1, "output_price_per_mtok": 0.1},
            "large": {**model, "input_price_per_mtok": 3.0, "output_price_per_mtok": 15.0},
        },
        "signals": sigs,
        "decisions": decisions,
    }


def model_encoders(domain_model: str | None) -> str:
    """Which encoder the jailbreak and domain models run (from their manifests)."""
    from polyroute.signals.textmodel import default_model_dir

    jailbreak = default_model_dir("jailbreak")
    if "variant" in JAILBREAK:
        jailbreak = jailbreak.with_name(f"jailbreak-{JAILBREAK['variant']}")
    named = f"shipped {jailbreak.name}"
    if "model" in JAILBREAK:
        jailbreak = Path(JAILBREAK["model"])
        named = str(jailbreak)
    dirs = {"jailbreak": jailbreak, "domain": domain_model or default_model_dir("domain")}
    found = {k: json.loads((Path(d) / "manifest.json").read_text())["encoder"]
             for k, d in dirs.items()}  # fmt: skip
    where = "shipped" if domain_model is None else domain_model
    return (f"jailbreak: `{found['jailbreak']}` ({named}); domain: "
            f"`{found['domain']}` ({where}); similarity: `static` unless stated")  # fmt: skip


def ensure_router(retrain: bool) -> None:
    if (ROUTER / "manifest.json").is_file() and not retrain:
        return
    argv = [sys.executable, "-m", "polyroute", "train", "--data", "dcrouter",
            "--router", "knn:encoder=static", "--out", str(ROUTER), "--no-calibration"]  # fmt: skip
    print("training:", " ".join(argv[1:]), flush=True)
    subprocess.run(argv, check=True, timeout=600)


# --------------------------------------------------------------------------- in-process


async def _decide_all(engine: Any, texts: list[str]) -> dict[str, Any]:
    from polyroute.types import Request, Trace

    for text in texts[:20]:  # first calls: lazy imports, caches
        await engine.adecide(Request.chat(text), Trace("warm"))
    wall: list[float] = []
    cpu: list[float] = []
    computed: list[int] = []
    for i, text in enumerate(texts[20:]):
        request, trace = Request.chat(text), Trace(f"t{i}")
        c0, t0 = time.process_time(), time.perf_counter()
        await engine.adecide(request, trace)
        wall.append((time.perf_counter() - t0) * 1000)
        cpu.append((time.process_time() - c0) * 1000)
        computed.append(sum(v is not None for v in trace.signals.values()))
    return {"n": len(wall), "p50": pct(wall, 50), "p99": pct(wall, 99), "cpu": pct(cpu, 50),
            "computed": float(np.mean(computed)), "of": len(engine.signals)}  # fmt: skip


def in_process(cfg: dict[str, Any], texts: list[str]) -> dict[str, Any]:
    """``adecide`` per prompt on an engine built from ``cfg`` (the upstream is never called)."""
    from polyroute.config import parse_config
    from polyroute.engine import Engine

    engine = Engine(parse_config(cfg, "<bench>"))
    t0 = time.perf_counter()
    engine.warmup()
    warmup_s = time.perf_counter() - t0
    return {**asyncio.run(_decide_all(engine, texts)), "warmup_s": warmup_s}


# --------------------------------------------------------------------------- gateway


@contextlib.contextmanager
def gateway(
    logs: Path, name: str, cfg: dict[str, Any], env: Mapping[str, str] | None = None
) -> Iterator[tuple[Server, float]]:
    """``polyroute serve`` on ``cfg``; yields it and the seconds from spawn to /readyz 200."""
    path = logs / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    port = free_port()
    argv = [sys.executable, "-m", "polyroute", "serve", "--config", str(path),
            "--host", LOOPBACK, "--port", str(port), "--log-level", "warning"]  # fmt: skip
    t0 = time.monotonic()
    server = start_server(name, argv, port, "/readyz", logs, timeout_s=START_TIMEOUT_S, env=env)
    started = time.monotonic() - t0
    try:
        yield server, started
    finally:
        server.stop()


async def burst(url: str, texts: list[str]) -> dict[str, Any]:
    """Closed loop: CONCURRENCY workers send ``texts`` (each once), for at most BURST_CAP_S."""
    latencies: list[float] = []
    errors = 0
    todo = iter(texts)
    deadline = time.monotonic() + BURST_CAP_S

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal errors
        for text in todo:
            if time.monotonic() > deadline:
                return
            try:
                latencies.append(await _one(session, url, body(text)))
            except (TimeoutError, aiohttp.ClientError, RuntimeError):
                errors += 1

    async with _session(CONCURRENCY) as session:
        t0 = time.perf_counter()
        await asyncio.gather(*(worker(session) for _ in range(CONCURRENCY)))
        elapsed = time.perf_counter() - t0
    return {"n": len(latencies), "errors": errors, "rps": len(latencies) / elapsed,
            "p50": pct(latencies, 50), "p99": pct(latencies, 99)}  # fmt: skip


async def paced(url: str, texts: list[str], rate: float) -> dict[str, Any]:
    """Open loop: one request every ``1 / rate`` s, whatever the answers' pace (latency at
    a given load, not at saturation), for at most BURST_CAP_S."""
    latencies: list[float] = []
    errors = 0

    async def one(session: aiohttp.ClientSession, text: str) -> None:
        nonlocal errors
        try:
            latencies.append(await _one(session, url, body(text)))
        except (TimeoutError, aiohttp.ClientError, RuntimeError):
            errors += 1

    async with _session(8 * CONCURRENCY) as session:
        t0 = time.perf_counter()
        tasks = []
        for k, text in enumerate(texts):
            if time.perf_counter() - t0 > BURST_CAP_S:
                break
            await asyncio.sleep(max(0.0, t0 + k / rate - time.perf_counter()))
            tasks.append(asyncio.create_task(one(session, text)))
        await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - t0
    return {"n": len(latencies), "errors": errors, "rps": len(latencies) / elapsed,
            "p50": pct(latencies, 50), "p99": pct(latencies, 99)}  # fmt: skip


async def _load(url: str, texts: list[str], pid: int) -> dict[str, Any]:
    warm, rest = texts[:WARMUP], texts[WARMUP:]
    async with _session(CONCURRENCY) as session:  # connections, lazy imports, first batches
        await asyncio.gather(*(_one(session, url, body(t)) for t in warm))
    cpu0 = cpu_s(pid)
    out = await (paced(url, rest, RATE[0]) if RATE else burst(url, rest))
    out["cpu_ms"] = (cpu_s(pid) - cpu0) * 1000 / max(1, out["n"])
    return out


def under_load(logs: Path, name: str, cfg: dict[str, Any], texts: list[str]) -> dict[str, Any]:
    import uvloop

    with gateway(logs, name, cfg) as (server, started):
        out = uvloop.run(_load(server.url + "/v1/chat/completions", texts, server.popen.pid))
        out["rss"], out["hwm"] = rss_mib(server.popen.pid)
        out["torch"] = "libtorch" in Path(f"/proc/{server.popen.pid}/maps").read_text()
    return {**out, "start_s": started}


def cold_start(logs: Path, cfg: dict[str, Any]) -> float:
    """Start-up seconds with an empty embedding cache (the static table distilled first)."""
    with tempfile.TemporaryDirectory(prefix="polyroute-cold-") as cache:
        env = {**os.environ, "POLYROUTE_CACHE_DIR": cache}
        with gateway(logs, "cold", cfg, env) as (_, started):
            return started


# --------------------------------------------------------------------------- report


def verdict(ok: bool) -> str:
    return "yes" if ok else "**no**"


def inproc_table(rows: dict[str, dict[str, Any]]) -> str:
    lines = ["| signals (in-process `adecide`) | computed / configured | p50 | p99 | "
             "CPU p50 | target p50 ≤ 5 ms |", "| --- | --- | --- | --- | --- | --- |"]  # fmt: skip
    for label, r in rows.items():
        met = verdict(r["p50"] <= TARGETS["signals_p50_ms"]) if r["of"] else ""
        lines.append(
            f"| {label} | {r['computed']:.2f} / {r['of']} | {r['p50']:.3f} ms | "
            f"{r['p99']:.3f} ms | {r['cpu']:.3f} ms | {met} |"
        )
    return "\n".join(lines)


def load_table(rows: dict[str, dict[str, Any]], cold: float | None) -> str:
    base = rows["no signals"]["rps"]
    lines = ["| gateway | req/s (32 concurrent) | vs no signals | p50 / p99 | CPU / req | "
             "RSS after (peak) | start → /readyz |", "|" + " --- |" * 7]  # fmt: skip
    for label, r in rows.items():
        lines.append(
            f"| {label} | {r['rps']:.0f} | {r['rps'] / base:.2f} | {r['p50']:.1f} / "
            f"{r['p99']:.1f} ms | {r['cpu_ms']:.2f} ms | {r['rss']:.0f} MiB ({r['hwm']:.0f}) | "
            f"{r['start_s']:.1f} s |"
        )
    n = ", ".join(f"{label}: {r['n']} ({r['errors']} errors)" for label, r in rows.items())
    torch = [label for label, r in rows.items() if r["torch"]] or ["none"]
    text = "\n".join(lines) + f"\n\nRequests in the closed loop, per gateway: {n}."
    text += f"\n\nGateways with torch loaded (`libtorch` in `/proc/PID/maps`): {', '.join(torch)}."
    if cold is not None:
        text += f"\n\nCold start (empty `POLYROUTE_CACHE_DIR`, guards gateway): {cold:.1f} s."
    return text


def targets_table(inproc: dict[str, Any], load: dict[str, Any], cold: float | None) -> str:
    guards, every = load["jailbreak + domain + similarity"], load["every signal"]
    starts = max(r["start_s"] for r in load.values())
    rows = [
        ("neural signals of one request (+ pii), p50",
         f"{inproc['p50']:.3f} ms", "≤ 5 ms", verdict(inproc["p50"] <= 5.0)),
        ("throughput, jailbreak + domain + similarity, 32 concurrent",
         f"{guards['rps']:.0f} req/s", "≥ 300 req/s", verdict(guards["rps"] >= 300.0)),
        ("gateway RSS with every signal, peak", f"{every['hwm']:.0f} MiB", "≤ 400 MiB",
         verdict(every["hwm"] <= 400.0)),
        ("start → /readyz, cache warm (slowest gateway)", f"{starts:.1f} s", "≤ 10 s",
         verdict(starts <= 10.0)),
    ]  # fmt: skip
    if cold is not None:
        rows.append(("start → /readyz, empty cache", f"{cold:.1f} s", "≤ 10 s",
                     verdict(cold <= 10.0)))  # fmt: skip
    lines = ["| target | measured | target | met |", "| --- | --- | --- | --- |"]
    return "\n".join(lines + [f"| {' | '.join(r)} |" for r in rows])


def write_results(report: str, argv: list[str]) -> None:
    command = "python benchmarks/bench_signal_gateway.py" + "".join(" " + a for a in argv)
    text = "\n".join([
        "# Gateway with every signal on", "", "Produced by:", "", "```", command, "```", "",
        "See the module docstring of `benchmarks/bench_signal_gateway.py` for the setup.",
        "The machine is shared: rerun before comparing small differences.", "",
        report, "", "Machine:", "", *(f"- {fact}" for fact in machine_facts()), "",
    ])  # fmt: skip
    old = RESULTS.read_text() if RESULTS.is_file() else ""
    kept = old[old.find(HISTORY) :] if HISTORY in old else ""  # hand-kept, survives reruns
    RESULTS.write_text(text + ("\n" + kept if kept else ""))


# --------------------------------------------------------------------------- main


def run_inproc(n: int, n_minilm: int, domain: str | None) -> dict[str, dict[str, Any]]:
    """In-process rows; a row with a MiniLM signal gets ``n_minilm`` prompts (~10-40 ms each)."""
    texts = prompts(n + 20)
    few = texts[: n_minilm + 20]
    domain_static = "domain: `static`" in model_encoders(domain)
    rows = {
        "none": in_process(config(NOWHERE, "none"), texts),
        "jailbreak + domain + similarity + pii": in_process(
            config(NOWHERE, "inproc", domain), texts if domain_static else few
        ),
        "same, similarity on minilm": in_process(config(NOWHERE, "minilm", domain), few),
    }
    for label, r in rows.items():
        print(f"in-process {label}: {r}", flush=True)
    return rows


def run_gateways(
    n: int, cold: bool, minilm: bool, domain: str | None
) -> tuple[dict[str, dict[str, Any]], float | None]:
    kinds = {"no signals": "none", "jailbreak + domain + similarity": "guards",
             "every signal": "all"}  # fmt: skip
    if minilm:
        kinds["jailbreak + domain + pii, similarity on minilm"] = "minilm"
    rows: dict[str, dict[str, Any]] = {}
    cold_s = None
    with tempfile.TemporaryDirectory(prefix="polyroute-bench-") as tmp:
        logs = Path(tmp)
        up_port = free_port()
        up_argv = [sys.executable, str(HERE / "fake_upstream.py"), "--port", str(up_port)]
        upstream = start_server("fake-upstream", up_argv, up_port, "/healthz", logs)
        try:
            texts = prompts(WARMUP + n)  # distinct within each gateway (each its own process)
            for label, kind in kinds.items():
                cfg = config(upstream.url, kind, domain)
                rows[label] = under_load(logs, f"gateway-{kind}", cfg, texts)
                print(f"gateway {label}: {rows[label]}", flush=True)
            if cold:
                cold_s = cold_start(logs, config(upstream.url, "guards", domain))
                print(f"cold start: {cold_s:.1f} s", flush=True)
        finally:
            upstream.stop()
    return rows, cold_s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=2000, help="in-process prompts")
    parser.add_argument("--minilm-prompts", type=int, default=300)
    parser.add_argument("--burst", type=int, default=4000, help="32-concurrent requests")
    parser.add_argument("--no-cold", action="store_true", help="skip the empty-cache start")
    parser.add_argument(
        "--minilm-gateway", action="store_true", help="also serve similarity on minilm (slow)"
    )
    parser.add_argument("--retrain", action="store_true", help="retrain the difficulty router")
    parser.add_argument("--domain-model", help="serve this domain model instead of the shipped one")
    parser.add_argument("--jailbreak-variant", help="serve this shipped jailbreak variant")
    parser.add_argument(
        "--jailbreak-model", help="serve this jailbreak model directory (say a gated cascade)"
    )
    parser.add_argument("--quick", action="store_true", help="few requests, no cold start")
    parser.add_argument("--rate", type=float, default=None, metavar="R",
                        help="open loop at R requests/s (latency at a given load; the "
                        "table's req/s is then the rate reached)")  # fmt: skip
    parser.add_argument("--no-write", action="store_true", help=f"do not write {RESULTS.name}")
    args = parser.parse_args()
    if args.quick:
        args.prompts, args.minilm_prompts, args.burst, args.no_cold = 300, 60, 800, True
    if args.jailbreak_variant and args.jailbreak_model:
        parser.error("give --jailbreak-variant or --jailbreak-model, not both")
    if args.jailbreak_variant:
        JAILBREAK["variant"] = args.jailbreak_variant
    if args.jailbreak_model:
        JAILBREAK["model"] = str(Path(args.jailbreak_model).resolve())
    if args.rate is not None:
        if args.rate <= 0:
            parser.error("--rate: expected requests/s > 0")
        RATE.append(args.rate)
    ensure_router(args.retrain)
    domain = args.domain_model and str(Path(args.domain_model).resolve())
    inproc = run_inproc(args.prompts, args.minilm_prompts, domain)
    load, cold = run_gateways(args.burst, not args.no_cold, args.minilm_gateway, domain)
    report = "\n\n".join([
        "Encoders: " + model_encoders(domain) + ".",
        targets_table(inproc["jailbreak + domain + similarity + pii"], load, cold),
        inproc_table(inproc), load_table(load, cold),
    ])  # fmt: skip
    print(report)
    if not args.no_write:
        write_results(report, sys.argv[1:])
        print(f"written to {RESULTS.relative_to(HERE.parent)}")


if __name__ == "__main__":
    main()
