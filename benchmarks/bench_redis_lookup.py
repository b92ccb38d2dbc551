"""``RedisIndex.lookup`` latency by scope size: the id-list protocol against the log.

Before (``--before``, default the commit that still read every live id): each lookup
did one ``ZRANGEBYSCORE`` of the scope's whole live id list, then fetched the vectors it
had not mirrored.  After (the working tree): one script returns the scope's counter and
only the entries added since this process last looked (``polyroute/cache/redis_index.py``).
Both classes run in this process, sequentially, against the same Redis and the same
scope (filled once by the new class's ``add``; the old one reads the same ``z``, ``v``
and ``e`` keys), with ``max_entries`` = the scope size.

Scopes of 1,000 / 5,000 / 10,000 random unit vectors (384 dims), distinct texts, rule
``Similarity("bench", 384, threshold=0.99, accept=0.99)``.  Workloads, each timed over
``--lookups`` sequential lookups after one untimed lookup (the cold read, reported apart):

- ``miss``: a random unit vector (no entry comes near 0.99): sync + local scoring;
- ``hit``: a stored entry's own vector and text: + the shortlist's texts and the answer;
- ``miss, 1 new``: as ``miss``, but another replica (another ``RedisIndex``) adds one
  entry before each lookup (untimed), evicting the oldest: the steady state of a busy
  scope, where the new protocol moves one entry per lookup.

The keys are deleted afterwards (``--redis`` db 15 by default, as the tests use).

    nice -n 10 .venv/bin/python benchmarks/bench_redis_lookup.py [--redis URL] [--before REV]
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np

from polyroute.cache import Similarity
from polyroute.cache.redis_index import RedisIndex

ROOT = Path(__file__).resolve().parent.parent
SIZES = (1_000, 5_000, 10_000)
DIM = 384
#: the last commit whose RedisIndex read the whole live id list on every lookup
BEFORE = "1bf443c"


def load_before(rev: str) -> Any:
    """The ``RedisIndex`` class of ``polyroute/cache/redis_index.py`` at ``rev`` (read
    with ``git show``, imported from a temporary file)."""
    source = subprocess.run(
        ["git", "show", f"{rev}:polyroute/cache/redis_index.py"],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    path = Path(tempfile.mkdtemp()) / "redis_index_before.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("redis_index_before", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["redis_index_before"] = module
    spec.loader.exec_module(module)
    return module.RedisIndex


def units(rng: np.random.Generator, n: int) -> np.ndarray:
    x = rng.normal(size=(n, DIM)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def pct(samples: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(samples) * 1000.0, q))


async def drop_keys(url: str, prefix: str) -> None:
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(url)
    try:
        keys = [k async for k in client.scan_iter(match=prefix + "*", count=1000)]
        for i in range(0, len(keys), 1000):
            await client.delete(*keys[i : i + 1000])
    finally:
        await client.aclose()


async def timed(
    index: Any,
    writer: RedisIndex,
    workload: str,
    stored: np.ndarray,
    texts: list[str],
    rng: np.random.Generator,
    lookups: int,
) -> tuple[float, list[float]]:
    """The cold lookup's time and ``lookups`` timed lookups of one workload (seconds)."""
    start = time.perf_counter()
    await index.lookup("s", units(rng, 1)[0], "cold")
    cold = time.perf_counter() - start
    samples = []
    for k in range(lookups):
        if workload == "hit":
            i = int(rng.integers(len(stored)))
            vector, text = stored[i], texts[i]
        else:
            vector, text = units(rng, 1)[0], f"query {k}"
        if workload == "miss, 1 new":
            await writer.add("s", units(rng, 1)[0], f"new {uuid.uuid4().hex}", b"new")
        start = time.perf_counter()
        hit = await index.lookup("s", vector, text)
        samples.append(time.perf_counter() - start)
        if (hit is not None) != (workload == "hit"):
            raise AssertionError(f"{workload}: unexpected {'hit' if hit else 'miss'}")
    return cold, samples


async def run(url: str, before_rev: str, lookups: int) -> list[str]:
    before_cls = load_before(before_rev)
    sim = Similarity("bench", DIM, threshold=0.99, accept=0.99)
    rng = np.random.default_rng(0)
    lines = [
        "| scope | workload | code | cold lookup ms | p50 ms | p99 ms | entries moved / lookup |",
        "|---|---|---|---|---|---|---|",
    ]
    for size in SIZES:
        prefix = f"bench:redislookup:{uuid.uuid4().hex}:"
        writer = RedisIndex(sim, url=url, prefix=prefix, max_entries=size)
        try:
            stored = units(rng, size)
            texts = [f"bench prompt number {i}" for i in range(size)]
            for i in range(size):
                await writer.add("s", stored[i], texts[i], f"answer {i}".encode())
            for workload in ("miss", "hit", "miss, 1 new"):
                for name, cls in (("before", before_cls), ("after", RedisIndex)):
                    index = cls(sim, url=url, prefix=prefix, max_entries=size)
                    try:
                        cold, samples = await timed(
                            index, writer, workload, stored, texts, rng, lookups
                        )
                        moved = (  # after: beyond the cold read of the whole scope
                            f"{(index.transferred - size) / lookups:.2f}"
                            if name == "after"
                            else f"{size:,} ids"
                        )
                        lines.append(
                            f"| {size:,} | {workload} | {name} | {cold * 1000:.2f} "
                            f"| {pct(samples, 50):.2f} | {pct(samples, 99):.2f} | {moved} |"
                        )
                        print(lines[-1], flush=True)
                    finally:
                        await index.aclose()
        finally:
            await writer.aclose()
            await drop_keys(url, prefix)
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/15")
    parser.add_argument("--before", default=BEFORE, help="git revision of the old index")
    parser.add_argument("--lookups", type=int, default=200, help="timed lookups per cell")
    args = parser.parse_args()
    lines = asyncio.run(run(args.redis, args.before, args.lookups))
    print()
    print("\n".join(lines))


if __name__ == "__main__":
    main()
