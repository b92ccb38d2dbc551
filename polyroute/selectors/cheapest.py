"""``cheapest``: lowest estimated request cost first (prices x estimated tokens)."""

from __future__ import annotations

from collections.abc import Sequence

from polyroute.backends.backend import Backend
from polyroute.selectors.static import healthy_first
from polyroute.types import Estimate, Request, Trace


class CheapestSelector:
    def order(self, candidates: Sequence[Backend], request: Request, trace: Trace) -> list[Backend]:
        costs = {b.name: b.estimate_cost(request) for b in candidates}
        trace.estimates = [Estimate(b.name, costs[b.name]) for b in candidates]
        return healthy_first(sorted(candidates, key=lambda b: costs[b.name]))
