"""The cache's contracts: :class:`CacheHit` and the :class:`SemanticIndex` protocol.

An index maps ``(scope, prompt)`` to an answer.  The scope (:func:`polyroute.cache.scope_key`)
must match exactly; the prompt is matched by meaning: the caller passes the prompt's
embedding (computed once by the request pipeline with the encoder the index's
:class:`~polyroute.cache.Similarity` names) and its text, and the index never embeds.
A prompt repeated word for word can be answered before any embedding (:meth:`exact`),
and a scope holding no live entry needs no embedding to know it cannot hit
(:meth:`probe`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt

Vector = npt.NDArray[np.float32]


@dataclass(frozen=True, slots=True)
class CacheHit:
    """A cached answer, with what matched (for the trace)."""

    answer: bytes
    similarity: float
    matched_text: str


@dataclass(frozen=True, slots=True)
class Probe:
    """What :meth:`SemanticIndex.probe` found before any embedding."""

    #: the word-for-word repeat's answer, if any
    hit: CacheHit | None
    #: whether the scope holds a live entry (False: a semantic lookup cannot hit)
    populated: bool


class SemanticIndex(Protocol):
    """Semantic cache storage: the memory and Redis backends implement it."""

    async def lookup(self, scope: str, vector: Vector, text: str) -> CacheHit | None:
        """The answer stored for the most similar prompt of ``scope``, if similar enough."""
        ...

    async def exact(self, scope: str, text: str) -> CacheHit | None:
        """The answer stored for this very prompt text in ``scope`` (the same text after
        ``strip()``, case and inner spacing kept), or None; ``similarity`` is 1.

        The fast path of a repeat: no vector, so the caller can skip the encoder.  It only
        answers what :meth:`lookup` would answer anyway (identical text has cosine 1 and
        passes every guard), never an expired or evicted entry."""
        ...

    async def probe(self, scope: str, text: str) -> Probe:
        """:meth:`exact`, and whether ``scope`` holds any live entry, in one step (one
        round trip on Redis)."""
        ...

    async def add(self, scope: str, vector: Vector, text: str, answer: bytes) -> None:
        """Store ``answer`` for the prompt ``text`` (embedded as ``vector``) in ``scope``."""
        ...

    async def aclose(self) -> None:
        """Release connections (a no-op for the memory index)."""
        ...
