"""RedisIndex against the real local Redis (skipped when it is not reachable)."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import numpy as np
import pytest
from cache_support import SIM, Clock, vec

from polyroute.cache import Similarity

REDIS_URL = os.environ.get("POLYROUTE_TEST_REDIS", "redis://127.0.0.1:6379/15")


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


#: two indexes on one prefix (two gateway replicas) and a plain client to the same Redis
Replicas = tuple[Any, Any, Any]


@pytest.fixture
async def replicas(prefix: str) -> AsyncIterator[Replicas]:
    import redis.asyncio as aioredis

    from polyroute.cache import RedisIndex

    a = RedisIndex(SIM, url=REDIS_URL, prefix=prefix)
    b = RedisIndex(SIM, url=REDIS_URL, prefix=prefix)
    client = aioredis.Redis.from_url(REDIS_URL)
    yield a, b, client
    await a.aclose()
    await b.aclose()
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

    clock = Clock(1_000_000.0)
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


async def test_probe_in_redis_counts_the_scope_s_live_entries(prefix: str) -> None:
    from polyroute.cache import Probe, RedisIndex

    clock = Clock(1_000_000.0)
    index = RedisIndex(SIM, url=REDIS_URL, prefix=prefix, ttl_s=10, clock=clock)
    try:
        assert await index.probe("s", "x") == Probe(None, populated=False)
        await index.add("s", vec(1, 0, 0), "x", b"X")
        found = await index.probe("s", "x")
        assert found.populated and found.hit is not None and found.hit.answer == b"X"
        assert await index.probe("s", "y") == Probe(None, populated=True)
        assert await index.probe("t", "x") == Probe(None, populated=False)
        clock.now += 10.5  # expired by the clock, whatever Redis's TTL says
        assert await index.probe("s", "y") == Probe(None, populated=False)
        assert await index.probe("s", "x") == Probe(None, populated=False)
    finally:
        await index.aclose()


async def test_exact_follows_eviction_and_ttl_and_cleans_its_keys(prefix: str) -> None:
    import redis.asyncio as aioredis

    from polyroute.cache import RedisIndex

    clock = Clock(1_000_000.0)
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

    clock = Clock(1_000_000.0)
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


class Trips:
    """Counts the Redis round trips of an index's client (a pipeline is one)."""

    def __init__(self, index: object, monkeypatch: pytest.MonkeyPatch) -> None:
        self.count = 0
        client = index._client  # type: ignore[attr-defined]
        execute, pipeline = client.execute_command, client.pipeline

        async def counted(*args: object, **kwargs: object) -> object:
            self.count += 1
            return await execute(*args, **kwargs)

        def piped(*args: object, **kwargs: object) -> object:
            self.count += 1
            return pipeline(*args, **kwargs)

        monkeypatch.setattr(client, "execute_command", counted)
        monkeypatch.setattr(client, "pipeline", piped)


async def test_a_replica_sees_the_other_replicas_entries_on_its_next_lookup(prefix: str) -> None:
    from polyroute.cache import RedisIndex

    clock = Clock(1_000_000.0)
    a = RedisIndex(SIM, url=REDIS_URL, prefix=prefix, clock=clock)
    b = RedisIndex(SIM, url=REDIS_URL, prefix=prefix, clock=clock)
    try:
        assert await b.lookup("s", vec(1, 0, 0), "x") is None  # b has read the empty scope
        await a.add("s", vec(1, 0, 0), "x", b"X")
        hit = await b.lookup("s", vec(1, 0, 0), "x")
        assert hit is not None and hit.answer == b"X"
        await b.add("s", vec(0, 1, 0), "y", b"Y")
        hit = await a.lookup("s", vec(0, 1, 0), "y")  # a never looked before: x and y
        assert hit is not None and hit.answer == b"Y"
        await b.add("s", vec(0, 0, 1), "z", b"Z")
        hit = await a.lookup("s", vec(0, 0, 1), "z")  # then only what is new: z
        assert hit is not None and hit.answer == b"Z"
        assert (a.transferred, b.transferred) == (3, 1)
    finally:
        await a.aclose()
        await b.aclose()


async def test_a_lookup_with_nothing_new_moves_no_id_and_makes_one_round_trip(
    prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from polyroute.cache import RedisIndex

    a = RedisIndex(SIM, url=REDIS_URL, prefix=prefix)
    b = RedisIndex(SIM, url=REDIS_URL, prefix=prefix)
    rng = np.random.default_rng(0)
    try:
        for i in range(50):  # all in the positive octant, so ``far`` reaches none
            await a.add("s", vec(*np.abs(rng.normal(size=3))), f"entry {i}", b"A")
        await a.add("s", vec(1, 0, 0), "x", b"X")
        far = vec(-1, -1, -1)
        await b.lookup("s", far, "far")  # loads the script, reads the scope once
        assert b.transferred == 51
        trips = Trips(b, monkeypatch)
        assert await b.lookup("s", far, "far") is None
        assert trips.count == 1 and b.transferred == 51
        hit = await b.lookup("s", vec(1, 0, 0), "x")
        assert hit is not None and hit.answer == b"X"
        assert trips.count == 1 + 3 and b.transferred == 51  # sync, texts, answer
        await a.add("s", vec(0, 1, 0), "y", b"Y")
        await b.lookup("s", vec(0, 1, 0), "y")
        assert trips.count == 4 + 3 and b.transferred == 52  # y only, in the same trip
        assert await b.lookup("s", far, "far") is None
        assert trips.count == 7 + 1 and b.transferred == 52
    finally:
        await a.aclose()
        await b.aclose()


async def test_an_entry_evicted_elsewhere_never_answers_from_a_mirror(prefix: str) -> None:
    """b mirrored x; a evicts it (a's max_entries; b's own bound would keep it): b's lookup
    finds x gone when it reads the shortlist, drops it and scores again without it, so x
    neither answers nor stands in for the runner-up (which here refuses the hit)."""
    from polyroute.cache import MemoryIndex, RedisIndex

    clock = Clock(1_000_000.0)
    a = RedisIndex(SIM, url=REDIS_URL, prefix=prefix, max_entries=3, clock=clock)
    b = RedisIndex(SIM, url=REDIS_URL, prefix=prefix, max_entries=10, clock=clock)
    memory = MemoryIndex(SIM, max_entries=3, clock=clock)
    y = vec(0.82, float(np.sqrt(1 - 0.82**2)), 0)  # cosine 0.82 with x
    w = vec(0.79, 0, float(np.sqrt(1 - 0.79**2)))  # 0.79: under the threshold, within margin
    try:
        for index in (a, memory):
            for v, text, answer in ((vec(1, 0, 0), "x", b"X"), (y, "y", b"Y"), (w, "w", b"W")):
                await index.add("s", v, text, answer)
                clock.now += 1
        hit = await b.lookup("s", vec(1, 0, 0), "x")
        assert hit is not None and hit.answer == b"X"  # b mirrors x, y and w
        for index in (a, memory):
            await index.add("s", vec(0, -1, 0), "u", b"U")  # evicts x, the oldest
        assert await memory.lookup("s", vec(1, 0, 0), "x") is None  # y 0.82 vs w 0.79
        assert await a.lookup("s", vec(1, 0, 0), "x") is None
        assert await b.lookup("s", vec(1, 0, 0), "x") is None
        assert len(b._mirrors["s"]) == 3  # y, w and u: x left the mirror
        hit = await b.lookup("s", y, "y")
        assert hit is not None and hit.answer == b"Y"
    finally:
        await a.aclose()
        await b.aclose()


async def test_an_expired_entry_never_answers_from_a_mirror(prefix: str) -> None:
    """Nothing sweeps x in Redis (no add after it, its keys' Redis TTL is real time): only
    the mirror's own expiry check, by ``clock``, keeps it from answering."""
    from polyroute.cache import RedisIndex

    clock = Clock(1_000_000.0)
    a = RedisIndex(SIM, url=REDIS_URL, prefix=prefix, ttl_s=10, clock=clock)
    b = RedisIndex(SIM, url=REDIS_URL, prefix=prefix, ttl_s=10, clock=clock)
    try:
        await a.add("s", vec(1, 0, 0), "x", b"X")
        clock.now += 9.5
        hit = await b.lookup("s", vec(1, 0, 0), "x")
        assert hit is not None and hit.answer == b"X"
        clock.now += 1
        assert await b.lookup("s", vec(1, 0, 0), "x") is None
        assert len(b._mirrors["s"]) == 0
        assert await a.lookup("s", vec(1, 0, 0), "x") is None
    finally:
        await a.aclose()
        await b.aclose()


async def test_a_flushed_scope_makes_the_mirror_resync(prefix: str, replicas: Replicas) -> None:
    """The scope's keys vanish (FLUSHDB, or they expired) and are written again: the
    sequence restarts at 1, so b must read the scope afresh (a new epoch), not take the
    entries above its old sequence number as what is new, nor answer from x."""
    a, b, client = replicas
    await a.add("s", vec(1, 0, 0), "x", b"X")
    await a.add("s", vec(0, 0, 1), "z", b"Z")
    assert await b.lookup("s", vec(1, 0, 0), "x") is not None  # b read up to seq 2
    await client.delete(*[k async for k in client.scan_iter(match=prefix + "*")])
    assert await b.lookup("s", vec(1, 0, 0), "x") is None
    assert len(b._mirrors["s"]) == 0
    await a.add("s", vec(0, 1, 0), "y", b"Y")  # seq 1, 2 and 3 of the new epoch
    await a.add("s", vec(0, 1, 1), "v", b"V")
    await a.add("s", vec(1, 1, 0), "w", b"W")
    await b.add("s", vec(1, 0, 1), "t", b"T")
    for v, text in ((vec(0, 1, 0), "y"), (vec(0, 1, 1), "v"), (vec(1, 1, 0), "w")):
        hit = await b.lookup("s", v, text)
        assert hit is not None and hit.answer == text.upper().encode()
    assert await b.lookup("s", vec(1, 0, 0), "x") is None


async def test_a_flushed_scope_written_again_is_not_read_as_new(
    prefix: str, replicas: Replicas
) -> None:
    """b read up to seq 2; the keys vanish and a writes two entries: the counter is at
    2 again, but the epoch differs, so b reads the whole scope instead of nothing."""
    a, b, client = replicas
    await a.add("s", vec(1, 0, 0), "x", b"X")
    await a.add("s", vec(0, 0, 1), "z", b"Z")
    assert await b.lookup("s", vec(1, 0, 0), "x") is not None
    await client.delete(*[k async for k in client.scan_iter(match=prefix + "*")])
    await a.add("s", vec(0, 1, 0), "y", b"Y")
    await a.add("s", vec(0, 1, 1), "v", b"V")
    hit = await b.lookup("s", vec(0, 1, 0), "y")
    assert hit is not None and hit.answer == b"Y"
    assert await b.lookup("s", vec(1, 0, 0), "x") is None
    assert sorted(bytes(i) for i in b._mirrors["s"].ids) == sorted(
        bytes(i) for i in await client.zrange(a._keys("s")[0], 0, -1)
    )


async def test_the_mirror_keeps_at_most_max_entries_the_newest(prefix: str) -> None:
    from polyroute.cache import RedisIndex

    clock = Clock(1_000_000.0)
    a = RedisIndex(SIM, url=REDIS_URL, prefix=prefix, max_entries=100, clock=clock)
    b = RedisIndex(SIM, url=REDIS_URL, prefix=prefix, max_entries=3, clock=clock)
    rng = np.random.default_rng(1)
    try:
        for i in range(4):
            await a.add("s", vec(*rng.normal(size=3)), f"old {i}", b"old")
            clock.now += 1
        await b.lookup("s", vec(1, 0, 0), "q")  # a full read: the 3 newest of 4
        assert len(b._mirrors["s"]) == 3
        for i in range(5):
            await a.add("s", vec(*rng.normal(size=3)), f"new {i}", b"new")
            clock.now += 1
            await b.lookup("s", vec(1, 0, 0), "q")
            assert len(b._mirrors["s"]) == 3
        expires = sorted(
            float(s) for _, s in await b._client.zrange(a._keys("s")[0], -3, -1, withscores=True)
        )
        assert sorted(b._mirrors["s"].expires[:3].tolist()) == expires
    finally:
        await a.aclose()
        await b.aclose()


async def test_replicas_adding_at_the_same_instant_evict_alike(prefix: str) -> None:
    """Equal expiry times (one clock reading): the mirror breaks the tie by id as
    ``ZPOPMIN`` does, so it drops exactly what Redis evicted."""
    import redis.asyncio as aioredis

    from polyroute.cache import RedisIndex

    clock = Clock(1_000_000.0)
    a = RedisIndex(SIM, url=REDIS_URL, prefix=prefix, max_entries=4, clock=clock)
    b = RedisIndex(SIM, url=REDIS_URL, prefix=prefix, max_entries=4, clock=clock)
    client = aioredis.Redis.from_url(REDIS_URL)
    rng = np.random.default_rng(2)
    try:
        await b.lookup("s", vec(1, 0, 0), "q")
        for i in range(12):
            await a.add("s", vec(*rng.normal(size=3)), f"entry {i}", b"A")
            if i % 3 == 2:
                await b.lookup("s", vec(1, 0, 0), "q")
                live = await client.zrange(a._keys("s")[0], 0, -1)
                assert sorted(b._mirrors["s"].ids) == sorted(bytes(i) for i in live)
    finally:
        await a.aclose()
        await b.aclose()
        await client.aclose()


async def test_a_lost_counter_starts_a_new_epoch_without_replaying_old_ids(
    replicas: Replicas,
) -> None:
    """Only the ``n`` hash vanishes (its TTL ran out first, say): the next add starts a
    new epoch and files the entries still there under sequence 0, so after one full
    read a replica is not sent them again as new on every lookup."""
    a, b, client = replicas
    for i, v in enumerate((vec(1, 0, 0), vec(0, 1, 0), vec(0, 0, 1))):
        await a.add("s", v, f"entry {i}", str(i).encode())
    await client.delete(a._keys("s")[5])
    await a.add("s", vec(1, 1, 0), "w", b"W")
    hit = await b.lookup("s", vec(0, 1, 0), "entry 1")
    assert hit is not None and hit.answer == b"1"
    assert b.transferred == 4
    await a.add("s", vec(1, 0, 1), "u", b"U")  # seq 2 of the new epoch
    hit = await b.lookup("s", vec(1, 1, 0), "w")
    assert hit is not None and hit.answer == b"W"
    assert b.transferred == 5  # u, not the old ids that had seq 2 and 3


async def test_a_replica_too_far_behind_reads_the_scope_afresh(prefix: str) -> None:
    """More entries were added than ``max_entries`` since b last looked: what b mirrors
    may all be gone (here a, with a smaller bound, evicted x1 and x2 as well as y1 and
    y2), so b reads the live listing instead of the new ids: its mirror is exactly it."""
    import redis.asyncio as aioredis

    from polyroute.cache import RedisIndex

    clock = Clock(1_000_000.0)
    a = RedisIndex(SIM, url=REDIS_URL, prefix=prefix, max_entries=2, clock=clock)
    b = RedisIndex(SIM, url=REDIS_URL, prefix=prefix, max_entries=3, clock=clock)
    client = aioredis.Redis.from_url(REDIS_URL)
    rng = np.random.default_rng(3)
    try:
        for text in ("x1", "x2", "y1", "y2", "y3", "y4"):
            await a.add("s", vec(*rng.normal(size=3)), text, text.encode())
            clock.now += 1
            if text == "x2":
                await b.lookup("s", vec(1, 0, 0), "q")
                assert len(b._mirrors["s"]) == 2
        await b.lookup("s", vec(1, 0, 0), "q")
        live = sorted(bytes(i) for i in await client.zrange(a._keys("s")[0], 0, -1))
        assert len(live) == 2 and sorted(b._mirrors["s"].ids) == live
    finally:
        await a.aclose()
        await b.aclose()
        await client.aclose()
