"""Semantic cache core: scope keys, the index contract, memory and Redis indexes, hit rule.

Use::

    if cacheable(body, allow_sampling=False):
        scope = scope_key(body, endpoint, decision, tenant)
        text = prompt_text(body)            # the last user message
        hit = await index.lookup(scope, vector, text)   # vector: the pipeline's embedding
        ...
        await index.add(scope, vector, text, answer_bytes)  # after a fresh answer

The index never embeds: ``vector`` comes from the encoder its :class:`Similarity`
names (``default_similarity("minilm")`` or ``("static")``); a trained family model
(:mod:`polyroute.cache.families`, ``with_families``) changes what the index stores and
how it scores, never what the caller passes.  ``RedisIndex`` needs the
``redis`` extra and is imported lazily.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from polyroute.cache.index import CacheHit, Probe, SemanticIndex
from polyroute.cache.key import IGNORED_FIELDS, cacheable, prompt_text, scope_key
from polyroute.cache.memory import MemoryIndex
from polyroute.cache.similarity import DEFAULTS, Similarity, default_similarity

if TYPE_CHECKING:
    from polyroute.cache.redis_index import RedisIndex

__all__ = [
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
]


def __getattr__(name: str) -> Any:
    if name == "RedisIndex":
        from polyroute.cache.redis_index import RedisIndex

        return RedisIndex
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
