"""Semantic index in Redis (``redis.asyncio``), shared by several gateway replicas.

Keys of one scope share the hash tag ``{<scope>}`` (one cluster slot):

- ``<prefix>{<scope>}:z``  sorted set: entry id -> expiry time (epoch seconds from ``clock``)
- ``<prefix>{<scope>}:v``  hash: entry id -> float32 unit vector bytes
- ``<prefix>{<scope>}:e:<id>``  hash ``t`` (prompt text), ``a`` (answer), ``x`` (the
  digest below), with a Redis TTL
- ``<prefix>{<scope>}:x:<sha256 of the stripped text>``  string: the id of the newest
  entry stored for that text, with the entry's TTL (:meth:`RedisIndex.exact`)

With a trained family model (:mod:`polyroute.cache.families`) the stored vectors depend on
it, so ``<prefix>`` is followed by ``f<digest>:``: another model never reads them.

An add is one Lua script (atomic across replicas): it drops expired ids, stores the
entry, evicts the oldest entries beyond ``max_entries`` (per scope) and refreshes
the TTL of the scope's keys; the ``x`` key of an entry that goes is deleted with it
unless a newer entry of the same text took it over.  An exact lookup is one more
script (one round trip, no vector): ``GET`` the ``x`` key, check that the id it names is
still live in the sorted set (so an evicted or expired entry never answers, whatever
the TTLs say) and ``HMGET`` its text and answer.  A lookup reads the scope's live ids (one
``ZRANGEBYSCORE``; at most ``max_entries``), fetches only the vectors this process
has not seen yet (one ``HMGET``: each process mirrors the vectors of its
``max_scopes`` most recently used scopes; a stored vector never changes), scores
locally with the same rule as the memory index, and, only when the best cosine can
reach the threshold, reads the shortlisted entries' texts (one pipelined round trip) and
the winner's answer (one ``HGET``).

Expiry times come from ``clock`` (wall clock by default), so replicas need synchronised
clocks (NTP); the entry keys also carry a Redis TTL, so nothing outlives ``ttl_s``.
A lookup reads every live id of its scope, so its cost grows with the scope
(latencies at ~1,800 entries in ``benchmarks/RESULTS_cache.md``).
"""

from __future__ import annotations

import hashlib
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from polyroute.cache.index import CacheHit, Vector
from polyroute.cache.similarity import Similarity, surface
from polyroute.errors import ConfigError

_ADD = """
local z, v, eprefix, xprefix = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local id, vec, text, answer = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local now, expires, ttl_ms, cap = ARGV[5], ARGV[6], tonumber(ARGV[7]), tonumber(ARGV[8])
local digest = ARGV[9]
local function drop(old)
  redis.call('HDEL', v, old)
  local x = redis.call('HGET', eprefix .. old, 'x')
  if x and redis.call('GET', xprefix .. x) == old then
    redis.call('DEL', xprefix .. x)
  end
  redis.call('DEL', eprefix .. old)
end
local stale = redis.call('ZRANGEBYSCORE', z, '-inf', now)
for _, old in ipairs(stale) do
  drop(old)
end
redis.call('ZREMRANGEBYSCORE', z, '-inf', now)
redis.call('ZADD', z, expires, id)
redis.call('HSET', v, id, vec)
redis.call('HSET', eprefix .. id, 't', text, 'a', answer, 'x', digest)
redis.call('PEXPIRE', eprefix .. id, ttl_ms)
redis.call('SET', xprefix .. digest, id, 'PX', ttl_ms)
local extra = redis.call('ZCARD', z) - cap
if extra > 0 then
  local victims = redis.call('ZPOPMIN', z, extra)
  for i = 1, #victims, 2 do
    drop(victims[i])
  end
end
redis.call('PEXPIRE', z, ttl_ms)
redis.call('PEXPIRE', v, ttl_ms)
return 1
"""

_EXACT = """
local id = redis.call('GET', KEYS[1])
if not id then
  return false
end
local expires = redis.call('ZSCORE', KEYS[2], id)
if not expires or tonumber(expires) <= tonumber(ARGV[1]) then
  return false
end
return redis.call('HMGET', KEYS[3] .. id, 't', 'a')
"""


def _digest(text: str) -> str:
    """The ``x`` key suffix of a prompt: what :meth:`RedisIndex.exact` compares."""
    return hashlib.sha256(text.strip().encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class _Mirror:
    """This process's copy of a scope's vectors (vectors never change once stored)."""

    ids: list[bytes]
    matrix: npt.NDArray[np.float32]


class RedisIndex:
    """A :class:`~polyroute.cache.SemanticIndex` in Redis; ``max_entries`` bounds each scope."""

    def __init__(
        self,
        similarity: Similarity,
        *,
        url: str = "redis://127.0.0.1:6379/0",
        prefix: str = "polyroute:cache:",
        max_entries: int = 2_000,
        ttl_s: float = 3600.0,
        clock: Callable[[], float] = time.time,
        max_scopes: int = 256,
    ) -> None:
        if max_entries < 1 or ttl_s <= 0:
            raise ConfigError("semantic_cache: expected max_entries >= 1 and ttl_s > 0")
        import redis.asyncio as aioredis

        self.similarity = similarity
        self.prefix = prefix
        self.max_entries = max_entries
        self.ttl_s = ttl_s
        self._clock = clock
        self._client: Any = aioredis.Redis.from_url(url)
        self._add_script: Any = self._client.register_script(_ADD)
        self._exact_script: Any = self._client.register_script(_EXACT)
        self.max_scopes = max_scopes
        self._mirrors: OrderedDict[str, _Mirror] = OrderedDict()

    def _keys(self, scope: str) -> tuple[str, str, str, str]:
        """The sorted set, the vector hash, and the prefixes of the entry and ``x`` keys."""
        tag = self.similarity.tag
        base = f"{self.prefix}{tag}:{{{scope}}}" if tag else f"{self.prefix}{{{scope}}}"
        return f"{base}:z", f"{base}:v", f"{base}:e:", f"{base}:x:"

    async def _matrix(self, scope: str) -> tuple[list[bytes], np.ndarray]:
        """The live ids of ``scope`` and their vectors; only vectors not mirrored are fetched."""
        z, vecs, _, _ = self._keys(scope)
        live: list[bytes] = await self._client.zrangebyscore(z, f"({self._clock()!r}", "+inf")
        live = live[-self.max_entries :]
        mirror = self._mirrors.pop(scope, None) or _Mirror(
            [], np.zeros((0, self.similarity.width), np.float32)
        )
        if live == mirror.ids:
            self._mirrors[scope] = mirror
            return mirror.ids, mirror.matrix
        known = {i: row for row, i in enumerate(mirror.ids)}
        kept = [i for i in live if i in known]
        missing = [i for i in live if i not in known]
        fetched = await self._client.hmget(vecs, missing) if missing else []
        new = [(i, raw) for i, raw in zip(missing, fetched, strict=True) if raw is not None]
        ids = kept + [i for i, _ in new]  # order does not matter, only ids <-> rows
        matrix = np.concatenate(
            [
                mirror.matrix[np.fromiter((known[i] for i in kept), np.intp, len(kept))],
                np.frombuffer(b"".join(raw for _, raw in new), np.float32).reshape(
                    len(new), self.similarity.width
                ),
            ]
        )
        self._mirrors[scope] = _Mirror(ids, matrix)
        while len(self._mirrors) > self.max_scopes:
            self._mirrors.popitem(last=False)
        return ids, matrix

    async def lookup(self, scope: str, vector: Vector, text: str) -> CacheHit | None:
        """The best live entry of ``scope`` if :meth:`Similarity.hits` accepts it."""
        v = self.similarity.unit(vector)
        ids, matrix = await self._matrix(scope)
        if not ids:
            return None
        sims = self.similarity.scores(matrix, v)
        rows = self.similarity.shortlist(sims)
        if not self.similarity.reachable(float(sims[rows[0]])):
            return None
        eprefix = self._keys(scope)[2]
        async with self._client.pipeline(transaction=False) as pipe:
            for r in rows.tolist():
                pipe.hget(eprefix + ids[r].decode(), "t")
            texts: list[bytes | None] = await pipe.execute()
        alive = [i for i, t in enumerate(texts) if t is not None]  # an entry may have expired
        if not alive:
            return None
        entries = [surface(bytes(texts[i] or b"").decode()) for i in alive]
        found = self.similarity.best(sims[rows[alive]], surface(text), entries)
        if found is None:
            return None
        winner = int(alive[found[0]])
        answer = await self._client.hget(eprefix + ids[int(rows[winner])].decode(), "a")
        if answer is None:  # expired between the round trips
            return None
        matched = bytes(texts[winner] or b"").decode()
        return CacheHit(answer=bytes(answer), similarity=found[1], matched_text=matched)

    async def exact(self, scope: str, text: str) -> CacheHit | None:
        """The live entry of ``scope`` stored for this very text (after ``strip()``), if any.

        One script, so one round trip and one consistent view: the ``x`` key's id must
        still be live in the sorted set (by ``clock``, as :meth:`lookup` reads it).  The
        stored text is compared too: the digest names the text, the text proves it."""
        z, _, eprefix, xprefix = self._keys(scope)
        found = await self._exact_script(
            keys=[xprefix + _digest(text), z, eprefix], args=[repr(self._clock())]
        )
        if not found or found[0] is None or found[1] is None:  # the entry went meanwhile
            return None
        matched = bytes(found[0]).decode()
        if matched.strip() != text.strip():
            return None
        return CacheHit(answer=bytes(found[1]), similarity=1.0, matched_text=matched)

    async def add(self, scope: str, vector: Vector, text: str, answer: bytes) -> None:
        """Store an entry (one atomic script); the oldest beyond ``max_entries`` go."""
        v = self.similarity.unit(vector)
        now = self._clock()
        await self._add_script(
            keys=list(self._keys(scope)),
            args=[
                uuid.uuid4().hex[:24],
                v.tobytes(),
                text.encode(),
                answer,
                repr(now),
                repr(now + self.ttl_s),
                max(1, int(self.ttl_s * 1000)),
                self.max_entries,
                _digest(text),
            ],
        )

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._client.aclose()
