"""The package's public face is pinned (a new export is a decision, not an accident)."""

from __future__ import annotations

import polyroute.cache as cache

EXPECTED = {
    "DEFAULTS",
    "IGNORED_FIELDS",
    "CacheHit",
    "MemoryIndex",
    "Probe",
    "RedisIndex",
    "SemanticIndex",
    "Similarity",
    "cacheable",
    "default_similarity",
    "prompt_text",
    "scope_key",
}


def test_exports_are_pinned_and_resolve() -> None:
    assert set(cache.__all__) == EXPECTED
    assert len(cache.__all__) == len(EXPECTED)
    for name in cache.__all__:
        assert getattr(cache, name) is not None
