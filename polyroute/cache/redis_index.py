"""Semantic index in Redis (``redis.asyncio``), shared by several gateway replicas.

Keys of one scope share the hash tag ``{<scope>}`` (one cluster slot):

- ``<prefix>{<scope>}:z``  sorted set: entry id -> expiry time (epoch seconds from ``clock``)
- ``<prefix>{<scope>}:v``  hash: entry id -> float32 unit vector bytes
- ``<prefix>{<scope>}:q``  sorted set: entry id -> its sequence number (the log of what
  was added, read from a sequence number on; its ids leave it when they leave ``z``)
- ``<prefix>{<scope>}:n``  hash ``seq`` (the last sequence number given) and ``epoch``
  (the id of the first entry written since the hash was created)
- ``<prefix>{<scope>}:e:<id>``  hash ``t`` (prompt text), ``a`` (answer), ``x`` (the
  digest below), with a Redis TTL
- ``<prefix>{<scope>}:x:<sha256 of the stripped text>``  string: the id of the newest
  entry stored for that text, with the entry's TTL (:meth:`RedisIndex.exact`)

Why a second sorted set for the log: ``z``'s expiry times cannot serve as a cursor
(replicas' clocks differ and readings tie, so an add from a replica whose clock lags would
land below a reader's cursor and never be read), and a stream would copy the vectors
and need trimming in step with evictions; ``q`` is kept by the same script as ``z`` and
holds no id ``z`` does not, so ``max_entries`` bounds it too.

With a trained family model (:mod:`polyroute.cache.families`) the stored vectors depend on
it, so ``<prefix>`` is followed by ``f<digest>:``: another model never reads them.

An add is one Lua script (atomic across replicas): it drops expired ids, stores the
entry under the next sequence number (``HINCRBY n seq``; ``ZADD q``), evicts the oldest
entries beyond ``max_entries`` (per scope) and refreshes the TTL of the scope's keys
(``z``, ``v``, ``q``, ``n``); the ``x`` key of an entry that goes is deleted with it
unless a newer entry of the same text took it over.  An exact lookup is one more
script (one round trip, no vector): ``GET`` the ``x`` key, check that the id it names is
still live in the sorted set (so an evicted or expired entry never answers, whatever
the TTLs say) and ``HMGET`` its text and answer.

Each process mirrors the entries of its ``max_scopes`` most recently used scopes (id,
expiry, vector: none of them ever changes once stored; :mod:`polyroute.cache.redis_mirror`)
with the ``(epoch, seq)`` it has read up to, and a lookup begins with one script,
``SYNC`` (:mod:`polyroute.cache.redis_scripts`): it sends that pair and gets the
scope's current ``n`` back, plus

- nothing else when ``seq`` has not moved (the usual case: a reply of a few bytes,
  whatever the size of the scope, and the lookup's only round trip on a miss);
- else, same epoch, the counter not behind the mirror and at most ``max_entries`` adds
  since: the ids in ``q`` above the mirror's ``seq`` (``ZRANGEBYSCORE``; an id added
  and already gone is not there), each with its expiry (``ZSCORE z``) and, for up to
  64 ids, its vector (``HGET v``): only what is new crosses the wire;
- else (a scope the process never read, the keys flushed or expired and written again:
  another epoch; the counter behind the mirror; more adds than ``max_entries`` since,
  so the mirror may be all stale): the scope's whole listing, at most ``max_entries``
  ids with their expiries (``ZRANGE z``), and the mirror is rebuilt from it.

Vectors a reply lacks and the mirror does not hold come with one ``HMGET v`` (a big
delta or a full listing: the second and last round trip of the sync).

The mirror then drops its expired ids (by ``clock``, as the memory index does) and,
beyond ``max_entries``, those that expire first (what the add script evicts), scores
locally with the same rule as the memory index and, only when the best cosine can reach
the threshold, reads the shortlisted entries' texts (one pipelined round trip) and the
winner's answer (one ``HGET``).  The mirror may still hold an id another replica evicted
or swept; such an id is caught by that text read (its ``e`` hash is gone): it leaves the
mirror and the scoring starts again without it (the third such round also rebuilds the
mirror from a full listing; a later one only leaves the id out), so a gone entry never
answers nor takes a runner-up's place.

Expiry times come from ``clock`` (wall clock by default), so replicas need synchronised
clocks (NTP); the entry keys also carry a Redis TTL, so nothing outlives ``ttl_s``.
A lookup transfers only the entries added since the process last read the scope, so
with nothing new its Redis cost does not grow with the scope; the local scoring (one
matrix-vector product) still does (``benchmarks/bench_redis_lookup.py``).
"""

from __future__ import annotations

import hashlib
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt

from polyroute.cache.index import CacheHit, Probe, Vector
from polyroute.cache.redis_mirror import Mirror
from polyroute.cache.redis_scripts import ADD, EXACT, INLINE, SYNC
from polyroute.cache.similarity import Similarity, surface
from polyroute.errors import ConfigError

#: Rounds of "a shortlisted id is gone: drop it, score again"; the last also resyncs.
_ROUNDS = 3


def _digest(text: str) -> str:
    """The ``x`` key suffix of a prompt: what :meth:`RedisIndex.exact` compares."""
    return hashlib.sha256(text.strip().encode()).hexdigest()


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
        self._add_script: Any = self._client.register_script(ADD)
        self._sync_script: Any = self._client.register_script(SYNC)
        self._exact_script: Any = self._client.register_script(EXACT)
        self.max_scopes = max_scopes
        self._mirrors: OrderedDict[str, Mirror] = OrderedDict()
        #: entries (id, expiry, vector or not) received by lookups' syncs since start: what
        #: tests and benchmarks read to see that a lookup with nothing new moves none
        self.transferred = 0

    def _keys(self, scope: str) -> tuple[str, str, str, str, str, str]:
        """The sorted set, the vector hash, the prefixes of the entry and ``x`` keys, the
        log (sorted set by sequence number) and the counter hash."""
        tag = self.similarity.tag
        base = f"{self.prefix}{tag}:{{{scope}}}" if tag else f"{self.prefix}{{{scope}}}"
        return f"{base}:z", f"{base}:v", f"{base}:e:", f"{base}:x:", f"{base}:q", f"{base}:n"

    def _vectors(self, raw: list[bytes]) -> npt.NDArray[np.float32]:
        return np.frombuffer(b"".join(raw), np.float32).reshape(len(raw), self.similarity.width)

    async def _sync(self, scope: str, *, full: bool = False) -> Mirror:
        """The mirror of ``scope`` brought up to date: one script round trip (module
        docstring), and one ``HMGET`` when the reply lacks vectors not mirrored yet.
        ``full`` forces the full listing (the mirror held too many gone ids)."""
        z, vecs, _, _, q, n = self._keys(scope)
        mirror = self._mirrors.pop(scope, None) or Mirror(self.similarity.width, self.max_entries)
        self._mirrors[scope] = mirror
        while len(self._mirrors) > self.max_scopes:
            self._mirrors.popitem(last=False)
        reply = await self._sync_script(
            keys=[n, q, z, vecs],
            args=[b"!" if full else mirror.epoch, mirror.seq, self.max_entries, INLINE],
        )
        epoch, seq, kind = bytes(reply[0]), int(reply[1]), bytes(reply[2])
        if kind == b"delta":
            ids, expires, raw = reply[3::3], [float(e) for e in reply[4::3]], reply[5::3]
        else:
            listing = reply[3] if len(reply) > 3 else []
            ids, expires = listing[::2], [float(e) for e in listing[1::2]]
            raw = [b""] * len(ids)
        self.transferred += len(ids)
        # a delta is of the mirror's own epoch, so it extends this very object (whose seq
        # only grows); a full listing builds a new one, keeping the vectors mirrored
        into = mirror if kind == b"delta" else Mirror(self.similarity.width, self.max_entries)
        sent = [k for k, r in enumerate(raw) if r]
        into.add(
            [ids[k] for k in sent],
            [expires[k] for k in sent],
            self._vectors([raw[k] for k in sent]),
        )
        known = [k for k, r in enumerate(raw) if not r and ids[k] in mirror.rows]
        if known and into is not mirror:  # copied before the await: rows may move
            rows = np.fromiter((mirror.rows[ids[k]] for k in known), np.intp, len(known))
            into.add([ids[k] for k in known], [expires[k] for k in known], mirror.vectors[rows])
        missing = [k for k, r in enumerate(raw) if not r and ids[k] not in mirror.rows]
        if missing:
            got = await self._client.hmget(vecs, [ids[k] for k in missing])
            found = [(k, bytes(r)) for k, r in zip(missing, got, strict=True) if r is not None]
            into.add(
                [ids[k] for k, _ in found],
                [expires[k] for k, _ in found],
                self._vectors([r for _, r in found]),
            )
        if into is mirror:
            mirror.seq = max(mirror.seq, seq)
            return mirror
        into.epoch, into.seq = epoch, seq
        if scope in self._mirrors:
            self._mirrors[scope] = into  # keeps its place in the LRU order
        return into

    async def lookup(self, scope: str, vector: Vector, text: str) -> CacheHit | None:
        """The best live entry of ``scope`` if :meth:`Similarity.hits` accepts it."""
        v = self.similarity.unit(vector)
        mirror = await self._sync(scope)
        eprefix = self._keys(scope)[2]
        for attempt in range(_ROUNDS + 1):
            mirror.trim(self._clock())
            if not mirror:
                return None
            sims = self.similarity.scores(mirror.matrix, v)
            rows = self.similarity.shortlist(sims)
            if not self.similarity.reachable(float(sims[rows[0]])):
                return None
            ids = [mirror.ids[r] for r in rows.tolist()]  # rows may move during the await
            async with self._client.pipeline(transaction=False) as pipe:
                for i in ids:
                    pipe.hget(eprefix + i.decode(), "t")
                texts: list[bytes | None] = await pipe.execute()
            gone = [i for i, t in zip(ids, texts, strict=True) if t is None]
            if not gone or attempt == _ROUNDS:
                break
            mirror.discard(gone)  # evicted or swept by another replica: score again
            if attempt == _ROUNDS - 1:
                mirror = await self._sync(scope, full=True)
        alive = [k for k, t in enumerate(texts) if t is not None]  # gone meanwhile: out
        if not alive:
            return None
        entries = [surface(bytes(texts[k] or b"").decode()) for k in alive]
        found = self.similarity.best(sims[rows[alive]], surface(text), entries)
        if found is None:
            return None
        winner = int(alive[found[0]])
        answer = await self._client.hget(eprefix + ids[winner].decode(), "a")
        if answer is None:  # expired between the round trips
            mirror.discard([ids[winner]])
            return None
        matched = bytes(texts[winner] or b"").decode()
        return CacheHit(answer=bytes(answer), similarity=found[1], matched_text=matched)

    async def exact(self, scope: str, text: str) -> CacheHit | None:
        """The live entry of ``scope`` stored for this very text (after ``strip()``), if any."""
        return (await self.probe(scope, text)).hit

    async def probe(self, scope: str, text: str) -> Probe:
        """:meth:`exact`, and whether the scope holds a live entry.

        One script, so one round trip and one consistent view: the ``x`` key's id must
        still be live in the sorted set (by ``clock``, as :meth:`lookup` reads it), else
        the script counts the scope's live entries.  The stored text is compared too: the
        digest names the text, the text proves it."""
        z, _, eprefix, xprefix, _, _ = self._keys(scope)
        found = await self._exact_script(
            keys=[xprefix + _digest(text), z, eprefix], args=[repr(self._clock())]
        )
        if isinstance(found, int):
            return Probe(None, populated=found > 0)
        if not found or found[0] is None or found[1] is None:  # the entry went meanwhile
            return Probe(None, populated=True)
        matched = bytes(found[0]).decode()
        if matched.strip() != text.strip():
            return Probe(None, populated=True)
        return Probe(CacheHit(bytes(found[1]), 1.0, matched), populated=True)

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
