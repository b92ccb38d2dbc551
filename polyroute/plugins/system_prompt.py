"""``system_prompt``: prepend (or replace) the system message before the model call."""

from __future__ import annotations

from typing import Any, Literal

from polyroute.types import Handler, Request, Trace


class SystemPrompt:
    def __init__(
        self, next_handler: Handler, text: str, mode: Literal["prepend", "replace"] = "prepend"
    ) -> None:
        self.next = next_handler
        self.text = text
        self.mode = mode

    async def __call__(self, request: Request, trace: Trace) -> Any:
        if request.endpoint == "chat":
            messages = request.messages
            if self.mode == "replace":
                messages = [m for m in messages if m.get("role") != "system"]
            system = {"role": "system", "content": self.text}
            request.body = {**request.body, "messages": [system, *messages]}
        return await self.next(request, trace)
