"""RedisIndex against the real local Redis (skipped when it is not reachable)."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace

import numpy as np
import pytest

from polyroute.cache import Similarity

REDIS_URL = os.environ.get("POLYROUTE_TEST_REDIS", "redis://127.0.0.1:6379/15")
SIM = Similarity("test", 3, threshold=0.8, accept=0.95, margin=0.05)


def vec(*xs: float) -> np.ndarray:
    v = np.asarray(xs, dtype=np.float32)
    return v / np.linalg.norm(v)


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


async def _redis_up() -> bool:
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(REDIS_URL, socket_connect_timeout=1)
    try:
        return bool(await client.ping())
    except Exception:
        return False
    finally:
        await client.aclose()


@pytest.fixture
async def prefix() -> AsyncIterator[str]:
    pytest.importorskip("redis")
    if not await _redis_up():
        if os.environ.get("CI"):
            pytest.fail(f"Redis is not reachable at {REDIS_URL} (CI must start it)")
        pytest.skip(f"Redis is not reachable at {REDIS_URL}")
    name = f"test:cache:{uuid.uuid4().hex}:"
    yield name
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(REDIS_URL)
    keys = [k async for k in client.scan_iter(match=name + "*")]
    if keys:
        await client.delete(*keys)
    await client.aclose()


async def test_hit_miss_and_tenants(prefix: str) -> None:
    from polyroute.cache import RedisIndex

    index = RedisIndex(SIM, url=REDIS_URL, prefix=prefix)
    try:
        await index.add("tenant-a", vec(1, 0, 0), "what is my balance", b"42")
        hit = await index.lookup("tenant-a", vec(1, 0.1, 0), "what's my balance")
        assert hit is not None and hit.answer == b"42"
        assert hit.matched_text == "what is my balance"
        assert await index.lookup("tenant-a", vec(0, 1, 0), "other") is None
        assert await index.lookup("tenant-b", vec(1, 0, 0), "what is my balance") is None
    finally:
        await index.aclose()


async def test_bounded_per_scope_and_ttl(prefix: str) -> None:
    from polyroute.cache import RedisIndex

    clock = Clock()
    index = RedisIndex(SIM, url=REDIS_URL, prefix=prefix, max_entries=2, ttl_s=10, clock=clock)
    try:
        await index.add("s", vec(1, 0, 0), "x", b"X")
        clock.now += 1
        await index.add("s", vec(0, 1, 0), "y", b"Y")
        clock.now += 1
        await index.add("s", vec(0, 0, 1), "z", b"Z")  # evicts x, the oldest
        assert await index.lookup("s", vec(1, 0, 0), "x") is None
        assert await index.lookup("s", vec(0, 1, 0), "y") is not None
        clock.now += 8.5  # y is 9.5 s old, z 8.5 s
        assert await index.lookup("s", vec(0, 1, 0), "y") is not None
        clock.now += 1  # y 10.5 s: expired; z 9.5 s: alive
        assert await index.lookup("s", vec(0, 1, 0), "y") is None
        assert await index.lookup("s", vec(0, 0, 1), "z") is not None
    finally:
        await index.aclose()


async def test_replicas_share_entries_and_see_evictions(prefix: str) -> None:
    from polyroute.cache import RedisIndex

    a = RedisIndex(SIM, url=REDIS_URL, prefix=prefix, max_entries=2)
    b = RedisIndex(SIM, url=REDIS_URL, prefix=prefix, max_entries=2, max_scopes=1)
    try:
        await a.add("s", vec(1, 0, 0), "x", b"X")
        hit = await b.lookup("s", vec(1, 0, 0), "x")  # b mirrors x's vector now
        assert hit is not None and hit.answer == b"X"
        await b.add("s", vec(0, 1, 0), "y", b"Y")
        await b.add("s", vec(0, 0, 1), "z", b"Z")  # evicts x
        assert await a.lookup("s", vec(1, 0, 0), "x") is None
        assert await b.lookup("s", vec(1, 0, 0), "x") is None  # b's mirror dropped x
        assert await b.lookup("t", vec(1, 0, 0), "x") is None  # another scope: mirror bound 1
        hit = await b.lookup("s", vec(0, 1, 0), "y")
        assert hit is not None and hit.answer == b"Y"
    finally:
        await a.aclose()
        await b.aclose()


async def test_lexical_verifier_in_redis(prefix: str) -> None:
    from polyroute.cache import RedisIndex

    sim = Similarity("test", 3, threshold=1.0, accept=1.0, lexical=0.5)
    index = RedisIndex(sim, url=REDIS_URL, prefix=prefix)
    try:
        await index.add("s", vec(1, 0, 0), "what is my balance", b"42")
        await index.add("s", vec(0, 0, 1), "unrelated", b"U")
        near = vec(0.8, 0.6, 0)
        hit = await index.lookup("s", near, "what is my balance please")
        assert hit is not None and hit.answer == b"42"
        assert hit.matched_text == "what is my balance"
        assert await index.lookup("s", near, "book a flight to paris") is None
    finally:
        await index.aclose()


async def test_memory_and_redis_give_the_same_hits(prefix: str) -> None:
    """One stream through both indexes: same hits, same answers, all guards included."""
    from polyroute.cache import MemoryIndex, RedisIndex

    sim = Similarity("test", 3, threshold=0.9, accept=0.9, lexical=0.25)
    template = "Q: There are {n} houses in a row and a person in each. " + "clue " * 120
    stream = [
        (vec(1, 0, 0), "convert 5 usd to eur"),
        (vec(1, 0.05, 0), "convert 50 usd to eur"),  # other number: a miss, stored
        (vec(1, 0.02, 0), "convert five usd into eur"),  # hits the first
        (vec(1, 0.06, 0), "please convert 50 usd to eur"),  # hits the second
        (vec(0, 1, 0), 'translate "good morning"'),
        (vec(0, 1, 0.05), 'translate "good night"'),  # other quote: a miss
        (vec(0, 0, 1), template.format(n=4) + "who owns the sedan?"),
        (vec(0, 0.05, 1), template.format(n=4) + "who owns the truck?"),  # long, not the same
        (vec(0, 0.02, 1), template.format(n=4) + "who owns the sedan?"),  # the same long text
        (vec(-1, 0, 0), "flights from new york to los angeles"),
        (vec(-1, 0.02, 0), "flights from los angeles to new york"),  # word-order swap: a miss
        (vec(-1, 0.01, 0), "show me flights from new york to los angeles"),  # hits the first
        (vec(0, -1, 0), "write a python function to find the gcd of two numbers"),
        (vec(0, -1, 0.02), "write a python function to find the lcm of two numbers"),  # swap
        (vec(0, -1, 0.01), "write a python function that finds the gcd of two numbers"),
    ]
    memory = MemoryIndex(sim)
    redis = RedisIndex(sim, url=REDIS_URL, prefix=prefix)
    outcomes: dict[str, list[bytes | None]] = {"memory": [], "redis": []}
    try:
        for name, index in (("memory", memory), ("redis", redis)):
            for i, (v, text) in enumerate(stream):
                hit = await index.lookup("s", v, text)
                outcomes[name].append(None if hit is None else hit.answer)
                if hit is None:
                    await index.add("s", v, text, str(i).encode())
    finally:
        await redis.aclose()
    assert outcomes["memory"] == outcomes["redis"]
    assert outcomes["memory"] == [
        *(None, None, b"0", b"1", None, None, None, None, b"6"),
        *(None, None, b"9", None, None, b"12"),
    ]


async def test_a_family_model_stores_its_own_vectors_under_its_own_keys(prefix: str) -> None:
    """Entries written with a family model are read back with it (the stored vectors
    carry the family part) and are not seen by an index without the model."""
    import redis.asyncio as aioredis

    from polyroute.cache import RedisIndex
    from polyroute.cache.families import Families
    from polyroute.cache.similarity import with_families

    w = np.asarray([[4.0, -4.0], [0.0, 0.0], [0.0, 0.0]], np.float32)  # family = sign of x[0]
    fam = Families("test", w, np.zeros(2, np.float32), raw_threshold=0.95, threshold=0.9)
    trained = RedisIndex(with_families(SIM, fam), url=REDIS_URL, prefix=prefix)
    plain = RedisIndex(replace(SIM, threshold=0.95, accept=0.95), url=REDIS_URL, prefix=prefix)
    client = aioredis.Redis.from_url(REDIS_URL)
    try:
        await trained.add("s", vec(1, 1, 0), "reset my password", b"A")
        hit = await trained.lookup("s", vec(1, 0, 1), "i forgot my password")  # cosine 0.5
        assert hit is not None and hit.answer == b"A"
        assert await trained.lookup("s", vec(-1, 1, 0), "book a table") is None
        assert await plain.lookup("s", vec(1, 1, 0), "reset my password") is None
        keys = [k.decode() async for k in client.scan_iter(match=prefix + "*")]
        assert keys and all(k.startswith(f"{prefix}f{fam.digest}:{{s}}") for k in keys)
    finally:
        await trained.aclose()
        await plain.aclose()
        await client.aclose()


async def test_exact_hit_and_misses_in_redis(prefix: str) -> None:
    from polyroute.cache import RedisIndex

    index = RedisIndex(SIM, url=REDIS_URL, prefix=prefix)
    try:
        await index.add("tenant-a", vec(1, 0, 0), "What is my balance?", b"42")
        hit = await index.exact("tenant-a", " What is my balance?\n")
        assert hit is not None
        assert (hit.answer, hit.similarity) == (b"42", 1.0)
        assert hit.matched_text == "What is my balance?"
        assert await index.exact("tenant-a", "what is my balance?") is None  # case is kept
        assert await index.exact("tenant-a", "What is my balance") is None
        assert await index.exact("tenant-b", "What is my balance?") is None  # another scope
    finally:
        await index.aclose()


async def test_exact_follows_eviction_and_ttl_and_cleans_its_keys(prefix: str) -> None:
    import redis.asyncio as aioredis

    from polyroute.cache import RedisIndex

    clock = Clock()
    index = RedisIndex(SIM, url=REDIS_URL, prefix=prefix, max_entries=2, ttl_s=10, clock=clock)
    client = aioredis.Redis.from_url(REDIS_URL)

    async def pointers() -> list[str]:
        return sorted([k.decode() async for k in client.scan_iter(match=prefix + "*:x:*")])

    try:
        await index.add("s", vec(1, 0, 0), "x", b"X")
        clock.now += 1
        await index.add("s", vec(0, 1, 0), "y", b"Y")
        assert len(await pointers()) == 2
        ttl = await client.pttl((await pointers())[0])
        assert 9_000 < ttl <= 10_000  # the entry's TTL
        clock.now += 1
        await index.add("s", vec(0, 0, 1), "z", b"Z")  # evicts x, the oldest
        assert await index.exact("s", "x") is None
        assert len(await pointers()) == 2  # x's pointer went with it
        hit = await index.exact("s", "y")
        assert hit is not None and hit.answer == b"Y"
        clock.now += 8.5  # y is 9.5 s old, z 8.5 s
        assert await index.exact("s", "y") is not None
        clock.now += 1  # y 10.5 s: expired by the clock, whatever Redis's TTL says
        assert await index.exact("s", "y") is None
        assert await index.exact("s", "z") is not None
        clock.now += 0.25  # z 9.75 s
        await index.add("s", vec(1, 1, 0), "w", b"W")  # sweeps y (and its pointer)
        assert len(await pointers()) == 2
        assert [await index.exact("s", t) is not None for t in ("z", "w")] == [True, True]
    finally:
        await index.aclose()
        await client.aclose()


async def test_exact_keeps_the_newest_entry_of_a_repeated_text(prefix: str) -> None:
    """The same text stored twice (two replicas that missed together): the pointer names
    the newest, and evicting the older one leaves it alone."""
    from polyroute.cache import RedisIndex

    clock = Clock()
    index = RedisIndex(SIM, url=REDIS_URL, prefix=prefix, max_entries=2, clock=clock)
    try:
        await index.add("s", vec(1, 0, 0), "x", b"old")
        clock.now += 1
        await index.add("s", vec(1, 0, 0), "x", b"new")
        clock.now += 1
        await index.add("s", vec(0, 1, 0), "y", b"Y")  # evicts the older x
        hit = await index.exact("s", "x")
        assert hit is not None and hit.answer == b"new"
    finally:
        await index.aclose()


async def test_exact_keys_carry_the_family_digest(prefix: str) -> None:
    """An index with another similarity never reads the pointers of a family model."""
    from polyroute.cache import RedisIndex
    from polyroute.cache.families import Families
    from polyroute.cache.similarity import with_families

    w = np.asarray([[4.0, -4.0], [0.0, 0.0], [0.0, 0.0]], np.float32)
    fam = Families("test", w, np.zeros(2, np.float32), raw_threshold=0.95, threshold=0.9)
    trained = RedisIndex(with_families(SIM, fam), url=REDIS_URL, prefix=prefix)
    plain = RedisIndex(SIM, url=REDIS_URL, prefix=prefix)
    try:
        await trained.add("s", vec(1, 1, 0), "reset my password", b"A")
        assert await trained.exact("s", "reset my password") is not None
        assert await plain.exact("s", "reset my password") is None
    finally:
        await trained.aclose()
        await plain.aclose()
