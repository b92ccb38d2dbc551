"""A process's copy of one Redis cache scope (:class:`Mirror`): what a lookup scores
locally, so that it only fetches what was added since it last looked
(:mod:`polyroute.cache.redis_index`)."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import numpy.typing as npt


class Mirror:
    """This process's copy of a scope: row ``i`` of ``vectors`` and ``expires`` belongs to
    ``ids[i]`` (an id's expiry and vector never change once stored, so a copy stays right
    until the entry goes); ``(epoch, seq)`` is how far into the scope's log it has read.

    Rows are removed by moving the last row into them (as the memory index does), so
    dropping the oldest entry of a full scope costs one row copy, not a new matrix."""

    __slots__ = ("cap", "epoch", "expires", "ids", "rows", "seq", "vectors")

    def __init__(self, width: int, cap: int) -> None:
        self.epoch = b""
        self.seq = 0
        self.cap = cap
        self.ids: list[bytes] = []
        self.rows: dict[bytes, int] = {}
        self.vectors = np.zeros((16, width), np.float32)
        self.expires = np.zeros(16, np.float64)

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def matrix(self) -> npt.NDArray[np.float32]:
        return self.vectors[: len(self.ids)]

    def add(self, ids: list[bytes], expires: list[float], vectors: npt.NDArray[np.float32]) -> None:
        """Append the entries not mirrored yet (two syncs may both bring an id)."""
        keep = [k for k, i in enumerate(ids) if i not in self.rows]
        if len(keep) < len(ids):
            ids = [ids[k] for k in keep]
            expires = [expires[k] for k in keep]
            vectors = vectors[keep]
        n, k = len(self.ids), len(ids)
        if n + k > len(self.vectors):
            size = max(n + k, min(2 * len(self.vectors), self.cap + 64))
            grown = np.zeros((size, self.vectors.shape[1]), np.float32)
            grown[:n] = self.vectors[:n]
            until = np.zeros(size, np.float64)
            until[:n] = self.expires[:n]
            self.vectors, self.expires = grown, until
        self.vectors[n : n + k] = vectors
        self.expires[n : n + k] = expires
        for j, i in enumerate(ids):
            self.rows[i] = n + j
        self.ids.extend(ids)

    def remove(self, rows: Iterable[int]) -> None:
        """Drop ``rows``; high rows first, so the rows moved down are never ones to drop."""
        for row in sorted(set(rows), reverse=True):
            del self.rows[self.ids[row]]
            last = len(self.ids) - 1
            if row != last:
                moved = self.ids[last]
                self.vectors[row] = self.vectors[last]
                self.expires[row] = self.expires[last]
                self.ids[row] = moved
                self.rows[moved] = row
            self.ids.pop()

    def discard(self, ids: Iterable[bytes]) -> None:
        """Drop these ids if mirrored (entries found gone from Redis)."""
        self.remove(self.rows[i] for i in ids if i in self.rows)

    def trim(self, now: float) -> None:
        """Drop the ids expired at ``now`` and, beyond ``cap``, those that expire first:
        what the add script drops, ties broken by id as ``ZPOPMIN`` breaks them."""
        n = len(self.ids)
        dead = np.flatnonzero(self.expires[:n] <= now) if n else np.zeros(0, np.intp)
        if dead.size:
            self.remove(dead.tolist())
            n = len(self.ids)
        if n <= self.cap:
            return
        extra = n - self.cap
        expires = self.expires[:n]
        cut = float(np.partition(expires, extra - 1)[extra - 1])
        below = np.flatnonzero(expires < cut).tolist()
        tied = sorted(np.flatnonzero(expires == cut).tolist(), key=lambda r: self.ids[r])
        self.remove(below + tied[: extra - len(below)])
