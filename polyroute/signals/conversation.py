"""Conversation shape: turns, user turns, tools, images, a system prompt."""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

from polyroute.signals.base import BaseSignal, SignalOptions
from polyroute.types import Request, SignalValue


def _has_images(request: Request) -> bool:
    for message in request.messages:
        content = message.get("content")
        if isinstance(content, list) and any(
            isinstance(p, dict) and p.get("type") in ("image_url", "image", "input_image")
            for p in content
        ):
            return True
    return False


_FIELDS: dict[str, Callable[[Request], SignalValue]] = {
    "turns": lambda r: len(r.messages),
    "user_turns": lambda r: sum(1 for m in r.messages if m.get("role") == "user"),
    "has_tools": lambda r: bool(r.body.get("tools") or r.body.get("functions")),
    "has_images": _has_images,
    "has_system": lambda r: any(m.get("role") in ("system", "developer") for m in r.messages),
}


class ConversationOptions(SignalOptions):
    field: Literal["turns", "user_turns", "has_tools", "has_images", "has_system"]


class ConversationSignal(BaseSignal):
    Options = ConversationOptions
    options: ConversationOptions

    def setup(self) -> None:
        self._fn = _FIELDS[self.options.field]

    def compute(self, request: Request) -> SignalValue:
        return self._fn(request)
