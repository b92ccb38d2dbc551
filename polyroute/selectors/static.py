"""``static``: candidates in config order; those whose circuit is open go last."""

from __future__ import annotations

from collections.abc import Sequence

from polyroute.backends.backend import Backend
from polyroute.types import Request, Trace


def healthy_first(candidates: Sequence[Backend]) -> list[Backend]:
    """Available backends first, open circuits last (still tried as a last resort)."""
    up = [b for b in candidates if b.available()]
    if len(up) == len(candidates):
        return list(candidates)
    return up + [b for b in candidates if not b.available()]


class StaticSelector:
    def order(self, candidates: Sequence[Backend], request: Request, trace: Trace) -> list[Backend]:
        return healthy_first(candidates)
