"""The load phases of ``bench_stack.py``, from one aiohttp client in the driver (uvloop).

``sequential``: pairs of requests, direct to the upstream and via the relay,
interleaved on one keep-alive connection each, and the relay's CPU per request one
at a time; ``saturated``: a closed loop of 32 workers.  CPU time is read per
process group from ``/proc``.  Every phase is bounded in count and time; aiohttp
and ``_harness`` are imported where used (nothing third-party at module level).
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import Any

CONCURRENCY = 32
PHASE_TIME_CAP_S = 120.0


def group_cpu_s(pgid: int) -> float:
    """User + system CPU seconds of every live process in process group ``pgid``."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            raw = Path(entry.path, "stat").read_bytes()
        except OSError:
            continue
        fields = raw[raw.rfind(b")") + 2 :].split()
        if int(fields[2]) == pgid:  # field 5, pgrp
            total += int(fields[11]) + int(fields[12])  # fields 14, 15: utime, stime
    return total / ticks


def _client_session(limit: int) -> Any:
    import aiohttp

    connector = aiohttp.TCPConnector(limit=limit, keepalive_timeout=60)
    return aiohttp.ClientSession(
        connector=connector, timeout=aiohttp.ClientTimeout(total=30), trust_env=False
    )


async def _one(session: Any, url: str, body: bytes) -> float:
    t0 = time.perf_counter()
    async with session.post(url, data=body, headers={"content-type": "application/json"}) as r:
        await r.read()
        if r.status != 200:
            raise RuntimeError(f"{url}: HTTP {r.status}")
    return (time.perf_counter() - t0) * 1000


async def sequential(direct: str, relay: str, n: int, pgid: int) -> dict[str, Any]:
    """``n`` pairs, direct and via the relay alternately first, one keep-alive connection each.

    Also returns the relay's CPU time per request over the pairs (one request at a
    time: no batching of several requests into one wake-up, unlike saturation).
    """
    import aiohttp
    from _harness import chat_body

    direct_ms: list[float] = []
    relay_ms: list[float] = []
    errors = 0
    async with _client_session(1) as s_direct, _client_session(1) as s_relay:
        for i in range(50):  # warm-up: connections, lazy imports, the relay's upstream pool
            await _one(s_direct, direct, chat_body(i))
            await _one(s_relay, relay, chat_body(i))
        deadline = time.monotonic() + PHASE_TIME_CAP_S
        cpu0 = group_cpu_s(pgid)
        for i in range(n):
            if time.monotonic() > deadline:
                break
            body = chat_body(i)
            pairs = [(s_direct, direct, direct_ms), (s_relay, relay, relay_ms)]
            for session, url, out in pairs if i % 2 == 0 else pairs[::-1]:
                try:
                    out.append(await _one(session, url, body))
                except (TimeoutError, aiohttp.ClientError, RuntimeError):
                    errors += 1
        cpu_us = (group_cpu_s(pgid) - cpu0) * 1e6 / max(1, len(relay_ms))
    return {
        "direct_ms": direct_ms,
        "relay_ms": relay_ms,
        "seq_errors": errors,
        "seq_cpu_us": cpu_us,
    }


async def saturated(url: str, n: int, pgids: dict[str, int]) -> dict[str, Any]:
    """``n`` requests from 32 workers on one pool; CPU per request of each process group."""
    import aiohttp
    from _harness import chat_body

    latencies: list[float] = []
    errors = 0
    counter = iter(range(n))
    deadline = time.monotonic() + PHASE_TIME_CAP_S

    async def worker(session: Any) -> None:
        nonlocal errors
        for i in counter:
            if time.monotonic() > deadline:
                return
            try:
                latencies.append(await _one(session, url, chat_body(i)))
            except (TimeoutError, aiohttp.ClientError, RuntimeError):
                errors += 1

    async with _client_session(CONCURRENCY) as session:
        await asyncio.gather(*(_one(session, url, chat_body(i)) for i in range(CONCURRENCY)))
        for i in range(CONCURRENCY * 4):  # warm-up, all connections open
            await _one(session, url, chat_body(i))
        cpu0 = {name: group_cpu_s(pgid) for name, pgid in pgids.items()}
        client0 = time.process_time()
        t0 = time.perf_counter()
        await asyncio.gather(*(worker(session) for _ in range(CONCURRENCY)))
        elapsed = time.perf_counter() - t0
        client_s = time.process_time() - client0
        cpu = {name: group_cpu_s(pgid) - cpu0[name] for name, pgid in pgids.items()}
    done = max(1, len(latencies) + errors)
    return {
        "n": len(latencies),
        "errors": errors,
        "rps": len(latencies) / elapsed,
        "latencies": latencies,
        "cpu_us": {**{k: v * 1e6 / done for k, v in cpu.items()}, "client": client_s * 1e6 / done},
    }
