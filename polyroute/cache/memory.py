"""In-process semantic index: per-scope matrices, a TTL and a global LRU bound.

Each scope keeps its entries' vectors as rows of one float32 matrix, so a lookup
is one matrix-vector product over the scope.  ``max_entries`` bounds all scopes
together; the least recently *used* entry (added or hit) is evicted first.
Expired entries never hit and are swept from a scope when a lookup meets them.
Each scope also maps its entries' stripped texts to them (:meth:`MemoryIndex.exact`:
a prompt repeated word for word is answered without an embedding); the map follows
every removal, so an evicted or expired entry never answers through it either.
Time comes from ``clock`` (``time.monotonic`` by default) so tests can inject one.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from polyroute.cache.index import CacheHit, Probe, Vector
from polyroute.cache.similarity import Similarity, Surface, surface
from polyroute.errors import ConfigError


@dataclass(slots=True)
class _Entry:
    key: int
    text: str
    answer: bytes
    surface: Surface
    expires: float


class _Scope:
    """The entries of one scope; row ``i`` of ``vectors`` belongs to ``entries[i]``.

    ``exact`` maps a stripped text to the newest entry stored for it: an older entry of
    the same text (two requests that missed together) stays reachable by meaning only,
    and when the newest goes first the text falls back to the semantic lookup."""

    def __init__(self, dim: int) -> None:
        self.vectors = np.zeros((4, dim), dtype=np.float32)
        self.expires = np.zeros(4, dtype=np.float64)
        self.entries: list[_Entry] = []
        self.exact: dict[str, _Entry] = {}

    def __len__(self) -> int:
        return len(self.entries)

    def append(self, entry: _Entry, vector: Vector, expires: float) -> None:
        n = len(self.entries)
        if n == len(self.vectors):
            self.vectors = np.concatenate([self.vectors, np.zeros_like(self.vectors)])
            self.expires = np.concatenate([self.expires, np.zeros_like(self.expires)])
        self.vectors[n] = vector
        self.expires[n] = expires
        self.entries.append(entry)
        self.exact[entry.text.strip()] = entry

    def remove(self, row: int) -> None:
        """Drop row ``row`` by moving the last row into it (order does not matter)."""
        gone = self.entries[row]
        if self.exact.get(gone.text.strip()) is gone:
            del self.exact[gone.text.strip()]
        last = len(self.entries) - 1
        if row != last:
            self.vectors[row] = self.vectors[last]
            self.expires[row] = self.expires[last]
            self.entries[row] = self.entries[last]
        self.entries.pop()

    def row_of(self, key: int) -> int:
        return next(i for i, e in enumerate(self.entries) if e.key == key)


class MemoryIndex:
    """A :class:`~polyroute.cache.SemanticIndex` in this process's memory."""

    def __init__(
        self,
        similarity: Similarity,
        *,
        max_entries: int = 10_000,
        ttl_s: float = 3600.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_entries < 1 or ttl_s <= 0:
            raise ConfigError("semantic_cache: expected max_entries >= 1 and ttl_s > 0")
        self.similarity = similarity
        self.max_entries = max_entries
        self.ttl_s = ttl_s
        self._clock = clock
        self._scopes: dict[str, _Scope] = {}
        self._lru: OrderedDict[int, str] = OrderedDict()  # entry key -> scope, oldest first
        self._next_key = 0

    def __len__(self) -> int:
        return len(self._lru)

    def _sweep(self, scope: str, bucket: _Scope, now: float) -> None:
        dead = np.flatnonzero(bucket.expires[: len(bucket)] <= now)
        for row in sorted(dead.tolist(), reverse=True):  # high rows first: swaps stay valid
            self._lru.pop(bucket.entries[row].key, None)
            bucket.remove(row)
        if not bucket:
            del self._scopes[scope]

    async def lookup(self, scope: str, vector: Vector, text: str) -> CacheHit | None:
        """The best entry of ``scope`` if :meth:`Similarity.hits` accepts it."""
        v = self.similarity.unit(vector)
        bucket = self._scopes.get(scope)
        if bucket is None:
            return None
        now = self._clock()
        n = len(bucket)
        if float(bucket.expires[:n].min()) <= now:
            self._sweep(scope, bucket, now)
            if scope not in self._scopes:
                return None
            n = len(bucket)
        sims = self.similarity.scores(bucket.vectors[:n], v)
        rows = self.similarity.shortlist(sims)
        if not self.similarity.reachable(float(sims[rows[0]])):
            return None
        found = self.similarity.best(
            sims[rows], surface(text), [bucket.entries[r].surface for r in rows]
        )
        if found is None:
            return None
        best, score = int(rows[found[0]]), found[1]
        entry = bucket.entries[best]
        self._lru.move_to_end(entry.key)
        return CacheHit(answer=entry.answer, similarity=score, matched_text=entry.text)

    async def exact(self, scope: str, text: str) -> CacheHit | None:
        """The live entry of ``scope`` stored for this very text (after ``strip()``), if any.

        A dict lookup, no vector: what :meth:`lookup` would answer anyway (identical text
        has cosine 1 and passes every guard), for the cost of a hash."""
        return (await self.probe(scope, text)).hit

    async def probe(self, scope: str, text: str) -> Probe:
        """:meth:`exact`, and whether the scope holds a live entry (its expired ones are
        swept when it seems to hold only those)."""
        bucket = self._scopes.get(scope)
        if bucket is None:
            return Probe(None, populated=False)
        now = self._clock()
        entry = bucket.exact.get(text.strip())
        if entry is not None and entry.expires > now:
            self._lru.move_to_end(entry.key)
            return Probe(CacheHit(entry.answer, 1.0, entry.text), populated=True)
        live = bool(len(bucket)) and float(bucket.expires[: len(bucket)].max()) > now
        if entry is not None or not live:
            self._sweep(scope, bucket, now)
        return Probe(None, populated=live)

    async def add(self, scope: str, vector: Vector, text: str, answer: bytes) -> None:
        """Store an entry; evicts the least recently used entries beyond ``max_entries``."""
        v = self.similarity.unit(vector)
        bucket = self._scopes.get(scope)
        if bucket is None:
            bucket = self._scopes[scope] = _Scope(self.similarity.width)
        key = self._next_key
        self._next_key += 1
        expires = self._clock() + self.ttl_s
        bucket.append(_Entry(key, text, answer, surface(text), expires), v, expires)
        self._lru[key] = scope
        while len(self._lru) > self.max_entries:
            old, old_scope = self._lru.popitem(last=False)
            victim = self._scopes[old_scope]
            victim.remove(victim.row_of(old))
            if not victim:
                del self._scopes[old_scope]

    async def aclose(self) -> None:
        """Nothing to release."""
