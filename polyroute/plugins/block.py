"""``block``: refuse the request explicitly (403 with a message) instead of calling a model."""

from __future__ import annotations

from typing import Any

from polyroute.errors import Blocked
from polyroute.types import Handler, Request, Trace


class Block:
    def __init__(self, next_handler: Handler, message: str = "request refused by policy") -> None:
        self.next = next_handler
        self.message = message

    async def __call__(self, request: Request, trace: Trace) -> Any:
        trace.outcome = "blocked"
        raise Blocked(self.message)
