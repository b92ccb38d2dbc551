"""``fastest``: power of two choices on the latency EWMA.

Two random candidates are compared and the one with the lower EWMA goes first
(unmeasured backends count as fastest, so each gets explored); the rest follow
by EWMA.  Sampling two avoids stampeding the single fastest backend.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from polyroute.backends.backend import Backend
from polyroute.selectors.static import healthy_first
from polyroute.types import Estimate, Request, Trace


def _latency(b: Backend) -> float:
    return b.stats.latency_ms if b.stats.latency_ms is not None else 0.0


class FastestSelector:
    def __init__(self, seed: int | None = None) -> None:
        self._rng = random.Random(seed)

    def order(self, candidates: Sequence[Backend], request: Request, trace: Trace) -> list[Backend]:
        up = [b for b in candidates if b.available()]
        ranked = sorted(candidates, key=_latency)
        trace.estimates = [
            Estimate(b.name, b.estimate_cost(request), latency_ms=b.stats.latency_ms)
            for b in ranked
        ]
        if len(up) >= 2:
            a, b = self._rng.sample(up, 2)
            first = a if _latency(a) <= _latency(b) else b
            ranked.remove(first)
            ranked.insert(0, first)
        return healthy_first(ranked)
