"""MemoryIndex: hits, misses, the margin rule, scopes (tenants), LRU eviction and TTL."""

from __future__ import annotations

import numpy as np
import pytest
from cache_support import SIM, Clock, vec

from polyroute.cache import MemoryIndex, Probe, Similarity, default_similarity, scope_key
from polyroute.errors import ConfigError


async def test_hit_and_miss_on_tiny_vectors() -> None:
    index = MemoryIndex(SIM)
    await index.add("s", vec(1, 0, 0), "what is my balance", b"42")
    hit = await index.lookup("s", vec(1, 0.1, 0), "what's my balance")
    assert hit is not None
    assert hit.answer == b"42" and hit.matched_text == "what is my balance"
    assert hit.similarity == pytest.approx(float(vec(1, 0.1, 0)[0]), abs=1e-6)
    assert await index.lookup("s", vec(0, 1, 0), "book a flight") is None  # cosine 0
    assert await index.lookup("s", vec(1, 0.9, 0), "half way") is None  # cosine 0.74 < 0.8


async def test_margin_rule_rejects_an_ambiguous_prompt() -> None:
    index = MemoryIndex(SIM)
    await index.add("s", vec(1, 0.3, 0), "a", b"A")
    await index.add("s", vec(1, -0.3, 0), "b", b"B")
    # equidistant from both (cosine 0.958 >= accept): accepted whatever the runner-up
    assert await index.lookup("s", vec(1, 0, 0), "q") is not None
    # between threshold and accept, and ambiguous (runner-up as close): a miss
    assert await index.lookup("s", vec(1, 0, 0.4), "q") is None
    # between threshold and accept but clearly nearer one entry: a hit on it
    hit = await index.lookup("s", vec(1, 0.45, 0.3), "q")
    assert hit is not None and hit.answer == b"A"


async def test_no_hit_across_tenants() -> None:
    index = MemoryIndex(SIM)
    body = {"temperature": 0, "messages": [{"role": "user", "content": "What is 2+2?"}]}
    mine = scope_key(body, "/v1/chat/completions", "general", "tenant-a")
    theirs = scope_key(body, "/v1/chat/completions", "general", "tenant-b")
    await index.add(mine, vec(1, 0, 0), "What is 2+2?", b"4")
    assert await index.lookup(theirs, vec(1, 0, 0), "What is 2+2?") is None
    assert await index.lookup(mine, vec(1, 0, 0), "What is 2+2?") is not None


async def test_lru_eviction_over_max_entries() -> None:
    index = MemoryIndex(SIM, max_entries=2)
    await index.add("s", vec(1, 0, 0), "x", b"X")
    await index.add("t", vec(0, 1, 0), "y", b"Y")
    assert await index.lookup("s", vec(1, 0, 0), "x") is not None  # x is now the most recent
    await index.add("s", vec(0, 0, 1), "z", b"Z")  # evicts y, the least recently used
    assert len(index) == 2
    assert await index.lookup("t", vec(0, 1, 0), "y") is None
    assert await index.lookup("s", vec(1, 0, 0), "x") is not None
    assert await index.lookup("s", vec(0, 0, 1), "z") is not None


async def test_ttl_expires_entries() -> None:
    clock = Clock()
    index = MemoryIndex(SIM, ttl_s=10, clock=clock)
    await index.add("s", vec(1, 0, 0), "x", b"X")
    clock.now += 5
    await index.add("s", vec(0, 1, 0), "y", b"Y")
    clock.now += 6  # x is 11 s old, y 6 s
    assert await index.lookup("s", vec(1, 0, 0), "x") is None
    assert await index.lookup("s", vec(0, 1, 0), "y") is not None
    assert len(index) == 1
    clock.now += 10
    assert await index.lookup("s", vec(0, 1, 0), "y") is None
    assert len(index) == 0


async def test_wrong_dimension_and_bad_config_are_errors() -> None:
    index = MemoryIndex(SIM)
    with pytest.raises(ValueError, match="3 dims"):
        await index.add("s", np.ones(4, dtype=np.float32), "x", b"X")
    with pytest.raises(ConfigError):
        MemoryIndex(SIM, max_entries=0)
    with pytest.raises(ConfigError):
        Similarity("x", 3, threshold=0.9, accept=0.8)
    with pytest.raises(ConfigError, match="minilm"):
        default_similarity("nope")
    assert default_similarity("minilm").dim == 384
    assert default_similarity("static").dim == 256


def test_words_and_jaccard() -> None:
    from polyroute.cache.similarity import jaccard, words

    assert words("What's my BALANCE?") == frozenset({"what", "s", "my", "balance"})
    assert jaccard(words("a b c"), words("b c d")) == 0.5
    assert jaccard(frozenset(), frozenset()) == 0.0


async def test_lexical_verifier_needs_shared_words() -> None:
    sim = Similarity("test", 3, threshold=1.0, accept=1.0, lexical=0.5)
    index = MemoryIndex(sim)
    await index.add("s", vec(1, 0, 0), "what is my balance", b"42")
    near = vec(0.8, 0.6, 0)  # cosine 0.8 to the entry
    hit = await index.lookup("s", near, "what is my balance please")  # jaccard 0.8: 1.2
    assert hit is not None and hit.similarity == pytest.approx(1.2, abs=1e-5)
    assert await index.lookup("s", near, "book a flight to paris") is None  # jaccard 0: 0.8
    assert await index.lookup("s", vec(1, 0.1, 0), "show funds") is None  # cosine .995, j 0


async def test_exact_answers_the_same_text_of_the_same_scope_only() -> None:
    index = MemoryIndex(SIM)
    await index.add("s", vec(1, 0, 0), "What is my balance?", b"42")
    hit = await index.exact("s", "  What is my balance?\n")  # stripped: the same text
    assert hit is not None
    assert (hit.answer, hit.similarity, hit.matched_text) == (b"42", 1.0, "What is my balance?")
    assert await index.exact("s", "what is my balance?") is None  # case is kept
    assert await index.exact("s", "What is  my balance?") is None  # so is inner spacing
    assert await index.exact("s", "What is my balance") is None
    assert await index.exact("t", "What is my balance?") is None  # another scope
    assert await index.exact("nowhere", "x") is None


async def test_probe_says_whether_a_scope_holds_a_live_entry() -> None:
    clock = Clock()
    index = MemoryIndex(SIM, ttl_s=10, clock=clock)
    assert await index.probe("s", "x") == Probe(None, populated=False)  # no scope yet
    await index.add("s", vec(1, 0, 0), "x", b"X")
    found = await index.probe("s", " x ")
    assert found.populated and found.hit is not None and found.hit.answer == b"X"
    assert await index.probe("s", "y") == Probe(None, populated=True)  # x could match y
    assert await index.probe("t", "x") == Probe(None, populated=False)  # another scope
    clock.now += 10.5  # x expired: nothing left to match
    assert await index.probe("s", "y") == Probe(None, populated=False)
    assert len(index) == 0  # and swept


async def test_exact_never_answers_an_expired_entry() -> None:
    clock = Clock()
    index = MemoryIndex(SIM, ttl_s=10, clock=clock)
    await index.add("s", vec(1, 0, 0), "x", b"X")
    clock.now += 5
    await index.add("s", vec(0, 1, 0), "y", b"Y")
    clock.now += 4.9
    assert await index.exact("s", "x") is not None
    clock.now += 0.2  # x is 10.1 s old: expired (and swept), y 5.1 s
    assert await index.exact("s", "x") is None
    assert len(index) == 1
    hit = await index.exact("s", "y")
    assert hit is not None and hit.answer == b"Y"
    clock.now += 5
    assert await index.exact("s", "y") is None
    assert len(index) == 0


async def test_exact_follows_eviction_and_refreshes_the_lru() -> None:
    index = MemoryIndex(SIM, max_entries=2)
    await index.add("s", vec(1, 0, 0), "x", b"X")
    await index.add("t", vec(0, 1, 0), "y", b"Y")
    assert await index.exact("s", "x") is not None  # x is now the most recent
    await index.add("s", vec(0, 0, 1), "z", b"Z")  # evicts y, the least recently used
    assert await index.exact("t", "y") is None
    assert await index.exact("s", "x") is not None
    await index.add("s", vec(0, 1, 1), "w", b"W")  # evicts z
    assert await index.exact("s", "z") is None
    assert [await index.exact("s", t) is not None for t in ("x", "w")] == [True, True]


async def test_exact_answers_the_newest_entry_of_a_repeated_text() -> None:
    """Two requests that missed together store the same text twice: the newest answers,
    and evicting the older one keeps it reachable."""
    index = MemoryIndex(SIM, max_entries=2)
    await index.add("s", vec(1, 0, 0), "x", b"old")
    await index.add("s", vec(1, 0, 0), "x ", b"new")
    hit = await index.exact("s", "x")
    assert hit is not None and hit.answer == b"new"
    await index.add("s", vec(0, 1, 0), "y", b"Y")  # evicts the older x
    hit = await index.exact("s", "x")
    assert hit is not None and hit.answer == b"new"
