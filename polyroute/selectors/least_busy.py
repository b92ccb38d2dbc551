"""``least-busy``: fewest requests in flight first (ties keep config order)."""

from __future__ import annotations

from collections.abc import Sequence

from polyroute.backends.backend import Backend
from polyroute.selectors.static import healthy_first
from polyroute.types import Request, Trace


class LeastBusySelector:
    def order(self, candidates: Sequence[Backend], request: Request, trace: Trace) -> list[Backend]:
        return healthy_first(sorted(candidates, key=lambda b: b.stats.in_flight))
