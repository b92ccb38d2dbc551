"""The load phases of ``bench_compare.py``: sequential and streaming rounds, closed loop, bursts.

Every phase is bounded in count and time and records each failed request in
``Errors`` (by target and phase) instead of raising.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from _compare_http import client_session, raw_post, send
from _compare_proc import group_pids, group_usage, wait_quiet
from _compare_targets import litellm_model
from _harness import PROMPTS, Server, chat_body, pct

CHAT = "/v1/chat/completions"
CONCURRENCY = 32
PHASE_TIME_CAP_S = 180.0


@dataclass
class Target:
    name: str
    url: str  # the chat completions URL
    pgid: int  # the server's process group (direct: the upstream's)
    bodies: list[bytes]
    stream_bodies: list[bytes]

    def body(self, i: int, stream: bool = False) -> bytes:
        pool = self.stream_bodies if stream else self.bodies
        return pool[i % len(pool)]


def make_target(name: str, server: Server) -> Target:
    """Requests for ``server`` as ``name`` sees them (LiteLLM is told the model)."""
    model: Callable[[int], str] = litellm_model if name == "litellm" else (lambda i: "auto")
    n = len(PROMPTS)
    return Target(
        name,
        server.url + CHAT,
        server.pgid,
        [chat_body(i, False, model(i)) for i in range(n)],
        [chat_body(i, True, model(i)) for i in range(n)],
    )


@dataclass
class Errors:
    """Every failed request, by target and phase."""

    by_target: dict[str, Counter[str]] = field(default_factory=dict)

    def add(self, target: str, phase: str, error: str) -> None:
        self.by_target.setdefault(target, Counter())[f"{phase}: {error}"] += 1

    def total(self, target: str) -> int:
        return sum(self.by_target.get(target, Counter()).values())


async def sequential(
    targets: list[Target],
    n: int,
    stream: bool,
    errors: Errors,
    quiet_s: float,
    warmup: int = 50,
) -> dict[str, Any]:
    """Interleaved request by request, rotating the order each round; one connection each.

    After every request the harness waits until no server process has used CPU for
    ``quiet_s`` (at most 25 ms), so that work a server does after answering (LiteLLM
    spends up to several ms of CPU per request after its response) does not land on
    the next target's request.
    """
    phase = "streaming" if stream else "sequential"
    lat: dict[str, list[float]] = {t.name: [] for t in targets}
    ttfb: dict[str, list[float]] = {t.name: [] for t in targets}
    decisions: Counter[str] = Counter()
    pids = [pid for t in targets for pid in group_pids(t.pgid)]
    sessions = [client_session(1) for _ in targets]
    pairs = list(zip(targets, sessions, strict=True))
    try:
        for i in range(min(warmup, n)):  # connections, caches, lazy imports
            for t, s in pairs:
                res = await send(s, t.url, t.body(i, stream), stream)
                if res.error:
                    errors.add(t.name, f"{phase} warm-up", res.error)
                wait_quiet(pids, quiet_s)
        deadline = time.monotonic() + PHASE_TIME_CAP_S
        rounds = 0
        for i in range(n):
            if time.monotonic() > deadline:
                break
            k = i % len(pairs)
            for t, s in pairs[k:] + pairs[:k]:
                res = await send(s, t.url, t.body(i, stream), stream)
                wait_quiet(pids, quiet_s)
                if res.error:
                    errors.add(t.name, phase, res.error)
                    continue
                lat[t.name].append(res.ms)
                ttfb[t.name].append(res.ttfb_ms)
                if t.name == "polyroute":
                    decisions[res.decision] += 1
            rounds += 1
    finally:
        for s in sessions:
            await s.close()
    return {"lat": lat, "ttfb": ttfb, "rounds": rounds, "decisions": decisions}


async def closed_loop(target: Target, n: int, errors: Errors) -> dict[str, Any]:
    """``n`` requests from ``CONCURRENCY`` workers on one pool; throughput and server CPU."""
    latencies: list[float] = []
    failed = 0
    counter = iter(range(n))
    deadline = time.monotonic() + PHASE_TIME_CAP_S

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal failed
        for i in counter:
            if time.monotonic() > deadline:
                return
            res = await send(session, target.url, target.body(i), False)
            if res.error:
                failed += 1
                errors.add(target.name, f"{CONCURRENCY} concurrent", res.error)
            else:
                latencies.append(res.ms)

    async with client_session(CONCURRENCY) as session:
        warm = await asyncio.gather(
            *(send(session, target.url, target.body(i), False) for i in range(CONCURRENCY * 4))
        )
        for res in warm:
            if res.error:
                errors.add(target.name, f"{CONCURRENCY} concurrent warm-up", res.error)
        cpu0, client0 = group_usage(target.pgid).cpu_s, time.process_time()
        t0 = time.perf_counter()
        await asyncio.gather(*(worker(session) for _ in range(CONCURRENCY)))
        elapsed = time.perf_counter() - t0
        cpu1, client1 = group_usage(target.pgid).cpu_s, time.process_time()
    done = len(latencies) + failed
    return {
        "n": len(latencies),
        "errors": failed,
        "elapsed": elapsed,
        "rps": len(latencies) / elapsed,
        "p50": pct(latencies, 50),
        "p99": pct(latencies, 99),
        "cpu_ms_per_req": 1000 * (cpu1 - cpu0) / max(done, 1),
        "client_cpu_ms_per_req": 1000 * (client1 - client0) / max(done, 1),
    }


async def warm_up(target: Target, n: int, errors: Errors, label: str) -> None:
    """``n`` requests at once over 8 connections; failures are recorded under ``label``."""
    async with client_session(8, timeout_s=60) as session:
        for res in await asyncio.gather(
            *(send(session, target.url, target.body(i), False) for i in range(n))
        ):
            if res.error:
                errors.add(target.name, label, res.error)


async def inflight_burst(
    target: Target, n: int, cap_s: float, errors: Errors, label: str
) -> dict[str, Any]:
    """``n`` requests started at once, one fresh connection each, bounded by ``cap_s``.

    Latency is from the burst's start to each answer.  Requests still unanswered at
    ``cap_s`` are cancelled and counted as errors ("unfinished at the cap").
    """
    url = urlsplit(target.url)
    host, port = url.hostname or "127.0.0.1", url.port or 80
    requests = []
    for i in range(len(PROMPTS)):
        body = target.body(i)
        head = (
            f"POST {url.path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
            "Connection: close\r\n\r\n"
        )
        requests.append(head.encode() + body)
    latencies: list[float] = []
    client0 = time.process_time()
    t0 = time.perf_counter()
    tasks = [
        asyncio.create_task(raw_post(host, port, requests[i % len(requests)], t0)) for i in range(n)
    ]
    done, pending = await asyncio.wait(tasks, timeout=cap_s)
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    elapsed = time.perf_counter() - t0
    failed: Counter[str] = Counter()
    for task in done:
        res = task.result()
        if res.error:
            failed[res.error] += 1
        else:
            latencies.append(res.ms)
    if pending:
        failed["unfinished at the cap"] += len(pending)
    for error, count in failed.items():
        for _ in range(count):
            errors.add(target.name, label, error)
    return {
        "n": n,
        "ok": len(latencies),
        "errors": dict(failed),
        "elapsed": elapsed,
        "p50": pct(latencies, 50),
        "p99": pct(latencies, 99),
        "max": max(latencies) if latencies else math.nan,
        "client_cpu_s": time.process_time() - client0,
        "capped": bool(pending),
    }
