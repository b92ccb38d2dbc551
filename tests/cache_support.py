"""What the cache tests share: a small similarity rule, unit vectors, a settable clock."""

from __future__ import annotations

import numpy as np

from polyroute.cache import Similarity

#: the rule of the index tests: 3-dim vectors, threshold 0.8, accept 0.95, margin 0.05
SIM = Similarity("test", 3, threshold=0.8, accept=0.95, margin=0.05)


def vec(*xs: float) -> np.ndarray:
    """``xs`` as a unit float32 vector."""
    v = np.asarray(xs, dtype=np.float32)
    return v / np.linalg.norm(v)


class Clock:
    """A clock the test moves by hand (``clock.now += ttl``)."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now
