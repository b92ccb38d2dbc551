"""``weighted``: pick the first candidate at random by weight; the rest follow by weight."""

from __future__ import annotations

import random
from collections.abc import Sequence

from polyroute.backends.backend import Backend
from polyroute.selectors.static import healthy_first
from polyroute.types import Request, Trace


class WeightedSelector:
    def __init__(self, weights: dict[str, float] | None = None, seed: int | None = None) -> None:
        self.weights = weights or {}
        self._rng = random.Random(seed)

    def order(self, candidates: Sequence[Backend], request: Request, trace: Trace) -> list[Backend]:
        pool = list(candidates)
        ordered: list[Backend] = []
        while pool:
            weights = [max(self.weights.get(b.name, b.weight), 0.0) for b in pool]
            if sum(weights) <= 0:
                ordered.extend(pool)
                break
            pick = self._rng.choices(range(len(pool)), weights=weights)[0]
            ordered.append(pool.pop(pick))
        return healthy_first(ordered)
