"""The semantic cache served by the gateway over HTTP, under load.

    python benchmarks/bench_cache_gateway.py            # ~3 minutes on 2 cores
    python benchmarks/bench_cache_gateway.py --quick    # fewer requests, shorter bursts

``benchmarks/fake_upstream.py`` and ``polyroute serve`` (one worker, ``--log-level
warning``) run as subprocesses on loopback, one gateway at a time, each on the config
of the other gateway benchmarks (``_harness.bench_config``: two models on the fake
upstream, ``select: cheapest`` by default) plus, for the cache rows, a top-level
``plugins: [{type: semantic_cache, ...}]``.  Every request body says ``temperature:
0`` (a request that samples is never cached) and ``max_tokens: 16``.

Streams:

- **CLINC**: CLINC150's validation queries (``../shared/data/guards/domains/clinc150``),
  in the order of ``_cache_data.make_stream`` with seed 300 (all 150 intents + ``oos``:
  the stream whose index-level hit rate ``RESULTS_cache_families.md`` reports, 42.3 %
  with the family rule over all 3,100 queries).  Same-intent queries are rewordings
  of one request; the "repeat ceiling" is the share of sent requests whose intent was
  sent before (an ``oos`` row is its own request).
- **distinct**: distinct dcrouter prompts cut to 600 characters (never repeated, so the
  cache can only miss: the cost a miss adds, one MiniLM embedding on the request path;
  any hit here answers a request with another's answer).
- **later turns**: the CLINC queries again, each as a conversation's second turn (a
  distinct dcrouter prompt and a short answer before it): the earlier turns are part
  of the cache's scope, so every scope is new and the cache can only miss.  The scope
  is known empty before any embedding, so the prompt is embedded (for the store) while
  the upstream answers; these rows use a ``TURN_DELAY_S`` (0.1 s) upstream, a fast
  model's time to answer, and compare the latency with and without the cache.
- **exact repeats**: draws with replacement (seed 300) from the first REPEAT_SET (50)
  queries of the CLINC stream, so all but the first sending of each is a word-for-word
  repeat: the index's exact lookup answers it before any embedding (the "repeat
  ceiling" is the share of requests whose text was sent before).

The fake upstream answers at once, so a miss is in flight for milliseconds only; two
more rows (``--slow-upstream-s``, default 0.5 s; 0 skips them) put a delay before each
upstream answer, as a real model would, which widens the window in which a rewording
arrives before its twin's answer is stored.

Before each measured burst every gateway gets WARMUP distinct dcrouter prompts (32
concurrent; not among the measured ones).  A burst is at most ``--requests`` requests
and ``--cap-s`` seconds, with 32 concurrent closed-loop aiohttp clients, or one (the
"sequential" rows, family and cosine: each request is sent after the previous answer,
so its earlier twin's answer is always stored; under 32 clients a rewording can arrive
while its twin is still in flight, and both miss).  Per burst: throughput, p50 / p99
latency, the share of responses with ``x-polyroute-cache: hit``, the upstream calls
made (the increase of ``polyroute_upstream_attempts_total`` on the gateway's
``/metrics``; the fake upstream keeps no count), the gateway's CPU per request
(``/proc/PID/stat``, all threads) and its RSS after the burst (peak: VmHWM).  The
Redis rows (``redis://127.0.0.1:6379/15``, a unique ``prefix`` each, their keys deleted
afterwards) are skipped when Redis does not answer.

For reference, the same CLINC prefix goes through ``MemoryIndex`` in-process (the
cached MiniLM vectors of ``bench_cache``), sequentially: the hit rate the sequential
gateway row should reproduce.

Prints a markdown report and writes it, with the command and machine facts, to
``benchmarks/RESULTS_cache_gateway.md`` (a ``## History`` section there is kept).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import orjson
from _cache_data import DATA, ceiling, embed, load_split, make_stream
from _harness import HERE, Server, bench_config, free_port, machine_facts, pct, start_server
from bench_cache import drop_keys, through_index
from bench_learned_selector import _session, cpu_s, prompts, rss_mib
from bench_signal_gateway import gateway
from prometheus_client.parser import text_string_to_metric_families

RESULTS = HERE / "RESULTS_cache_gateway.md"
HISTORY = "## History"  # this heading and what follows it are kept when the file is rewritten
SEED = 300  # the stream of RESULTS_cache_families.md's first row
CONCURRENCY = 32
WARMUP = 64
REDIS_URL = "redis://127.0.0.1:6379/15"
REPEAT_SET = 50  # distinct prompts of the exact-repeats stream
CLINC, DISTINCT, REPEATS, TURNS = "CLINC", "distinct", "exact repeats", "later turns"
TURN_DELAY_S = 0.1
Prompt = str | tuple[str, str]  # a prompt, or (an earlier user turn, the prompt)


@dataclass(frozen=True, eq=False)  # hashed by identity: a dict key
class Row:
    label: str
    stream: str  # CLINC, DISTINCT, REPEATS or TURNS
    clients: int
    cache: dict[str, Any] | None  # the semantic_cache plugin's options; None: no plugin
    delay_s: float = 0.0  # the fake upstream's delay before each answer


# --------------------------------------------------------------------------- inputs


def clinc_stream() -> tuple[list[str], np.ndarray, Any, np.ndarray]:
    """The CLINC validation queries in stream order: texts, labels, the split, the order."""
    names = {json.loads(line)["intent"] for line in (DATA / "train.jsonl").open()} - {"oos"}
    ids = {name: i for i, name in enumerate(sorted(names))}
    val = load_split("validation", ids)
    order = make_stream(val, set(range(len(ids))), None, SEED)
    return [val.texts[i] for i in order], val.labels[order], val, order


def repeats_stream(clinc: list[str], n: int) -> tuple[list[str], np.ndarray]:
    """``n`` draws with replacement from the first REPEAT_SET CLINC queries: texts and
    which of them each is (a label per distinct text, for the repeat ceiling)."""
    picks = np.random.default_rng(SEED).integers(0, REPEAT_SET, n)
    return [clinc[i] for i in picks.tolist()], picks


def body(prompt: Prompt) -> bytes:
    messages = [{"role": "user", "content": prompt if isinstance(prompt, str) else prompt[1]}]
    if not isinstance(prompt, str):
        messages[:0] = [{"role": "user", "content": prompt[0]},
                        {"role": "assistant", "content": "Noted."}]  # fmt: skip
    return orjson.dumps({"model": "auto", "messages": messages, "max_tokens": 16, "temperature": 0})


def redis_reachable() -> bool:
    try:
        import redis

        return bool(redis.Redis.from_url(REDIS_URL, socket_timeout=2).ping())
    except Exception:
        return False


# --------------------------------------------------------------------------- load


async def _ask(session: aiohttp.ClientSession, url: str, data: bytes) -> tuple[float, str]:
    """One request: (milliseconds, its ``x-polyroute-cache`` header or "")."""
    t0 = time.perf_counter()
    async with session.post(url, data=data, headers={"content-type": "application/json"}) as r:
        await r.read()
        if r.status != 200:
            raise RuntimeError(f"HTTP {r.status}")
        cache = r.headers.get("x-polyroute-cache", "")
    return (time.perf_counter() - t0) * 1000, cache


async def closed_loop(url: str, texts: list[Prompt], clients: int, cap_s: float) -> dict[str, Any]:
    """``clients`` workers send ``texts`` in order (each once), for at most ``cap_s``."""
    latencies: list[float] = []
    hits = errors = sent = 0
    todo = iter(texts)
    deadline = time.monotonic() + cap_s

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal hits, errors, sent
        for text in todo:
            if time.monotonic() > deadline:
                return
            sent += 1
            try:
                ms, cache = await _ask(session, url, body(text))
            except (TimeoutError, aiohttp.ClientError, RuntimeError):
                errors += 1
                continue
            latencies.append(ms)
            hits += cache == "hit"

    async with _session(clients) as session:
        t0 = time.perf_counter()
        await asyncio.gather(*(worker(session) for _ in range(clients)))
        elapsed = time.perf_counter() - t0
    return {"n": len(latencies), "sent": sent, "errors": errors, "hits": hits,
            "rps": len(latencies) / elapsed, "p50": pct(latencies, 50),
            "p99": pct(latencies, 99), "elapsed_s": elapsed}  # fmt: skip


def scrape(url: str) -> dict[str, float]:
    """Upstream attempts and cache hits so far, from the gateway's ``/metrics``."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(url, timeout=10) as resp:
        text = resp.read().decode()
    out = {"upstream": 0.0, "cache_hit": 0.0}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "polyroute_upstream_attempts_total":
                out["upstream"] += sample.value
            elif sample.name == "polyroute_cache_total" and sample.labels.get("result") == "hit":
                out["cache_hit"] += sample.value
    return out


async def drive(
    base: str, pid: int, warm: list[str], texts: list[Prompt], clients: int, cap_s: float
) -> dict[str, Any]:
    url = base + "/v1/chat/completions"
    async with _session(CONCURRENCY) as session:  # connections, lazy imports, the encoder
        await asyncio.gather(*(_ask(session, url, body(t)) for t in warm))
    m0, c0 = scrape(base + "/metrics"), cpu_s(pid)
    out = await closed_loop(url, texts, clients, cap_s)
    c1, m1 = cpu_s(pid), scrape(base + "/metrics")
    out["cpu_ms"] = (c1 - c0) * 1000 / max(1, out["n"])
    out["upstream"] = int(m1["upstream"] - m0["upstream"])
    out["metric_hits"] = int(m1["cache_hit"] - m0["cache_hit"])
    return out


def fake_upstream(logs: Path, delay_s: float) -> Server:
    port = free_port()
    argv = [sys.executable, str(HERE / "fake_upstream.py"), "--port", str(port),
            "--delay-s", str(delay_s)]  # fmt: skip
    return start_server(f"fake-upstream-{delay_s:g}", argv, port, "/healthz", logs)


def measure(
    logs: Path, upstream: str, row: Row, warm: list[str], texts: list[Prompt], cap_s: float
) -> dict[str, Any]:
    import uvloop

    cfg = bench_config(upstream)
    if row.cache is not None:
        cfg["plugins"] = [{"type": "semantic_cache", **row.cache}]
    name = "gateway-" + "".join(c if c.isalnum() else "-" for c in row.label + row.stream)
    with gateway(logs, name, cfg) as (server, started):
        pid = server.popen.pid
        out = uvloop.run(drive(server.url, pid, warm, texts, row.clients, cap_s))
        out["rss"], out["hwm"] = rss_mib(pid)
        log = server.log_path.read_text(errors="replace")
    out["start_s"] = started
    out["warnings"] = sum("WARNING" in line or "ERROR" in line for line in log.splitlines())
    return out


def index_reference(sent: int) -> dict[str, float]:
    """Hit rate of the first ``sent`` CLINC stream queries through MemoryIndex, in-process."""
    from polyroute.cache import DEFAULTS, MemoryIndex
    from polyroute.cache.families import default_families_dir, load_families
    from polyroute.cache.similarity import with_families

    _, _, val, order = clinc_stream()
    x = embed("minilm", val.texts)
    cosine = DEFAULTS["minilm"]
    rules = {"family": with_families(cosine, load_families(default_families_dir())),
             "cosine": cosine}  # fmt: skip
    out = {}
    for name, sim in rules.items():
        scored, _ = asyncio.run(through_index(MemoryIndex(sim, max_entries=100_000), x, val,
                                              order[:sent]))  # fmt: skip
        out[name] = scored.hits / max(1, scored.requests)
        out[name + "_wrong"] = scored.wrong / max(1, scored.requests)
    return out


# --------------------------------------------------------------------------- report


def table(rows: dict[Row, dict[str, Any]], labels: dict[str, np.ndarray]) -> str:
    base = {(row.stream, row.delay_s, row.clients): r for row, r in rows.items()
            if row.cache is None}  # fmt: skip
    lines = ["| gateway | stream | clients | requests (errors) | req/s | vs no cache | "
             "p50 / p99 | hits (`x-polyroute-cache`) | repeat ceiling | upstream calls "
             "(per request) | CPU / req | RSS after (peak) |", "|" + " --- |" * 12]  # fmt: skip
    for row, r in rows.items():
        ref = base.get((row.stream, row.delay_s, row.clients)) or base[row.stream, row.delay_s,
                                                                        CONCURRENCY]  # fmt: skip
        cap = f"{ceiling(labels[row.stream][: r['sent']]):.1%}" if row.stream in labels else "0"
        hits = f"{r['hits'] / max(1, r['n']):.1%}" if row.cache is not None else "-"
        lines.append(
            f"| {row.label} | {row.stream} | {row.clients} | {r['n']} ({r['errors']}) | "
            f"{r['rps']:.0f} | {r['rps'] / ref['rps']:.2f} | {r['p50']:.1f} / {r['p99']:.1f} ms"
            f" | {hits} | {cap} | {r['upstream']} ({r['upstream'] / max(1, r['n']):.2f}) | "
            f"{r['cpu_ms']:.2f} ms | {r['rss']:.0f} MiB ({r['hwm']:.0f}) |"
        )
    return "\n".join(lines)


def notes(rows: dict[Row, dict[str, Any]], ref: dict[str, float] | None, sent: int) -> str:
    out = []
    mismatch = [row.label for row, r in rows.items() if r["metric_hits"] != r["hits"]]
    agree = f" except for: {', '.join(mismatch)}." if mismatch else " on every row."
    out.append(
        "Hits counted from the response header and from `polyroute_cache_total` agree" + agree
    )
    warned = [f"{row.label}: {r['warnings']}" for row, r in rows.items() if r["warnings"]]
    out.append("Gateway log lines at WARNING or above: " + (", ".join(warned) or "none") + ".")
    starts = ", ".join(f"{row.label}: {r['start_s']:.1f} s" for row, r in rows.items())
    out.append(f"Start → `/readyz` 200: {starts}.")
    if ref is not None:
        out.append(
            f"In-process reference (`MemoryIndex`, sequential, the first {sent} queries of "
            f"the same CLINC stream, cached MiniLM vectors): family rule {ref['family']:.1%} "
            f"hits ({ref['family_wrong']:.2%} wrong), cosine {ref['cosine']:.1%} "
            f"({ref['cosine_wrong']:.2%} wrong).  The fake upstream gives every request the "
            "same answer, so the gateway rows cannot tell a wrong hit from a right one."
        )
    return "\n\n".join(out)


def write_results(report: str, argv: list[str]) -> None:
    command = "python benchmarks/bench_cache_gateway.py" + "".join(" " + a for a in argv)
    text = "\n".join([
        "# Semantic cache through the gateway, under load", "", "Produced by:", "", "```",
        command, "```", "",
        "See the module docstring of `benchmarks/bench_cache_gateway.py` for the setup.",
        "The machine is shared: rerun before comparing small differences.", "",
        report, "", "Machine:", "", *(f"- {fact}" for fact in machine_facts()), "",
    ])  # fmt: skip
    old = RESULTS.read_text() if RESULTS.is_file() else ""
    kept = old[old.find(HISTORY) :] if HISTORY in old else ""  # hand-kept, survives reruns
    RESULTS.write_text(text + ("\n" + kept if kept else ""))


# --------------------------------------------------------------------------- main


def plan(redis_prefix: str | None, slow_s: float) -> list[Row]:
    c = CONCURRENCY
    rows = [
        Row("no cache", CLINC, c, None),
        Row("cache, family (default)", CLINC, c, {}),
        Row("cache, family (default), sequential", CLINC, 1, {}),
        Row("cache, `similarity: cosine`", CLINC, c, {"similarity": "cosine"}),
        Row("cache, `similarity: cosine`, sequential", CLINC, 1, {"similarity": "cosine"}),
        Row("no cache", DISTINCT, c, None),
        Row("cache, family (default), all misses", DISTINCT, c, {}),
        Row("cache, `similarity: cosine`, all misses", DISTINCT, c, {"similarity": "cosine"}),
    ]
    if slow_s > 0:
        rows.append(Row(f"no cache, upstream +{slow_s:g} s", CLINC, c, None, slow_s))
        rows.append(Row(f"cache, family (default), upstream +{slow_s:g} s", CLINC, c, {}, slow_s))
    turns = f"upstream +{TURN_DELAY_S:g} s"
    for clients in (1, c):
        rows.append(Row(f"no cache, {turns}", TURNS, clients, None, TURN_DELAY_S))
        rows.append(Row(f"cache, family (default), {turns}", TURNS, clients, {}, TURN_DELAY_S))
    rows += [
        Row("no cache", REPEATS, c, None),
        Row("cache, family (default)", REPEATS, c, {}),
    ]
    if redis_prefix is not None:
        opts = {"backend": "redis", "url": REDIS_URL, "prefix": redis_prefix}
        rows.append(Row("cache, family, `backend: redis`", CLINC, c, opts))
        # its own keys: the CLINC row stored these very queries
        opts = {**opts, "prefix": redis_prefix + "repeats:"}
        rows.append(Row("cache, family, `backend: redis`", REPEATS, c, opts))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000, help="most requests per burst")
    parser.add_argument("--cap-s", type=float, default=60.0, help="longest burst, seconds")
    parser.add_argument("--no-redis", action="store_true", help="skip the Redis row")
    parser.add_argument(
        "--slow-upstream-s", type=float, default=0.5, help="delay of the slow rows (0: none)"
    )
    parser.add_argument("--no-reference", action="store_true", help="skip the in-process rows")
    parser.add_argument("--quick", action="store_true", help="600 requests, 20 s bursts")
    parser.add_argument("--no-write", action="store_true", help=f"do not write {RESULTS.name}")
    parser.add_argument(
        "--only", choices=(CLINC, DISTINCT, REPEATS, TURNS), help="the rows of one stream"
    )
    args = parser.parse_args()
    if args.quick:
        args.requests, args.cap_s = 600, 20.0
    clinc, labels, _, _ = clinc_stream()
    distinct = prompts(WARMUP + args.requests)
    repeats, picks = repeats_stream(clinc, args.requests)
    turns: list[Prompt] = [(d, q) for d, q in zip(distinct[WARMUP:], clinc, strict=False)]
    warm = distinct[:WARMUP]
    streams: dict[str, list[Prompt]] = {CLINC: list(clinc[: args.requests]),
                                        DISTINCT: list(distinct[WARMUP:]),
                                        REPEATS: list(repeats), TURNS: turns}  # fmt: skip
    use_redis = not args.no_redis and redis_reachable()
    prefix = f"polyroute:bench-gateway:{uuid.uuid4().hex[:12]}:" if use_redis else None
    rows: dict[Row, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="polyroute-bench-") as tmp:
        logs = Path(tmp)
        upstreams: dict[float, Server] = {}
        try:
            for row in plan(prefix, args.slow_upstream_s):
                if args.only is not None and row.stream != args.only:
                    continue
                if row.delay_s not in upstreams:
                    upstreams[row.delay_s] = fake_upstream(logs, row.delay_s)
                url = upstreams[row.delay_s].url
                rows[row] = measure(logs, url, row, warm, streams[row.stream], args.cap_s)
                print(f"{row.label} [{row.stream}, {row.clients} clients]: {rows[row]}", flush=True)
        finally:
            for upstream in upstreams.values():
                upstream.stop()
            if prefix is not None:
                asyncio.run(drop_keys(REDIS_URL, prefix))
    seq = next((r for row, r in rows.items() if row.clients == 1 and row.stream == CLINC),
               None)  # the first: family  # fmt: skip
    ref = None if args.no_reference or seq is None else index_reference(seq["sent"])
    sent = 0 if seq is None else seq["sent"]
    report = table(rows, {CLINC: labels, REPEATS: picks}) + "\n\n" + notes(rows, ref, sent)
    if not use_redis:
        report += "\n\nRedis row skipped (" + ("--no-redis" if args.no_redis else
                                               f"{REDIS_URL} did not answer") + ")."  # fmt: skip
    print(report)
    if not args.no_write:
        write_results(report, sys.argv[1:])
        print(f"written to {RESULTS.relative_to(HERE.parent)}")


if __name__ == "__main__":
    main()
