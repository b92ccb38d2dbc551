"""``pii``: redact personal data before the upstream sees it; restore it in the answer, or refuse.

    plugins:
      - {type: pii}                                  # redact the structured types, restore nothing
      - {type: pii, entities: [EMAIL_ADDRESS, PERSON], restore: true}
      - {type: pii, entities: [US_SSN, CREDIT_CARD], action: refuse, status: 422}

Values become ``<EMAIL_ADDRESS_1>``-style placeholders, the same value the same
placeholder in every message of the request (``polyroute.pii_redact``).  With
``restore: true`` the answer gets the values back, whole or streamed (a placeholder
split across chunks is still restored).  The trace says which types were found and
how many values, never the values.  Put ``pii`` before ``semantic_cache``: the cache
then keys and stores redacted text, and a hit is restored with this request's values.
"""

from __future__ import annotations

import asyncio
from typing import Literal

from pydantic import Field

from polyroute.pii_redact import Redaction, StreamRestorer, redact_body, restore
from polyroute.plugins.base import BasePlugin, ChunkTap, Context, PluginEnv, PluginOptions, Verdict
from polyroute.plugins.block import BlockOptions, refusal
from polyroute.plugins.stream import chunk_texts
from polyroute.signals.pii import Entities
from polyroute.signals.pii_person import NER_ENTITIES, check_installed, load
from polyroute.signals.pii_recognizers import STRUCTURED, span_finder
from polyroute.types import JSON

_STATE = "pii.mapping"
# bodies larger than this (or any, with a spaCy model) are scanned in a worker thread
INLINE_MAX_BYTES = 64 * 1024


class PiiPluginOptions(PluginOptions):
    entities: Entities = Field(default_factory=lambda: list(STRUCTURED))
    action: Literal["redact", "refuse"] = "redact"
    restore: bool = False
    message: str = Field(default="the request contains personal data", min_length=1)
    status: int = Field(default=400, ge=400, le=499)
    code: str = Field(default="pii_refused", pattern=r"^[a-z0-9_]{1,64}$")


class PiiPlugin(BasePlugin):
    Options = PiiPluginOptions
    options: PiiPluginOptions

    def setup(self, env: PluginEnv) -> None:
        self._model = bool(set(self.options.entities) & set(NER_ENTITIES))
        if self._model:
            check_installed()  # a missing package fails the config load, not a request
        self.finder = span_finder(self.options.entities)
        o = self.options
        self.refusal = BlockOptions(message=o.message, status=o.status, code=o.code)

    def warmup(self) -> None:
        if self._model:
            load()

    async def on_request(self, ctx: Context) -> Verdict:
        redaction = Redaction(finder=self.finder)
        if self._model or ctx.request.size > INLINE_MAX_BYTES:  # off the event loop
            body = await asyncio.to_thread(
                redact_body, ctx.request.body, ctx.request.endpoint, redaction
            )
        else:
            body = redact_body(ctx.request.body, ctx.request.endpoint, redaction)
        found = sorted(redaction.found)
        if not found:
            return None
        mapping = redaction.mapping
        if self.options.action == "refuse":
            ctx.trace.events.append({"plugin": "pii", "action": "refused", "entities": found})
            ctx.trace.outcome = "blocked"
            raise refusal(self.refusal)
        ctx.rewrite(body)
        ctx.trace.events.append(
            {"plugin": "pii", "action": "redacted", "entities": found, "values": len(mapping)}
        )
        if self.options.restore:
            ctx.state[_STATE] = mapping
        return None

    async def on_answer(self, ctx: Context, answer: JSON) -> JSON:
        mapping = ctx.state.get(_STATE)
        if not mapping:
            return answer
        for choice in answer.get("choices") or ():
            if not isinstance(choice, dict):
                continue
            message = choice.get("message")
            if isinstance(message, dict) and isinstance(message.get("content"), str):
                message["content"] = restore(message["content"], mapping)
            if isinstance(choice.get("text"), str):
                choice["text"] = restore(choice["text"], mapping)
        return answer

    def on_stream(self, ctx: Context) -> ChunkTap | None:
        mapping = ctx.state.get(_STATE)
        return _RestoreTap(mapping) if mapping else None


class _RestoreTap:
    """Restores placeholders chunk by chunk, one :class:`StreamRestorer` per choice; what
    a restorer holds is released with the choice's finish chunk (or at the end)."""

    def __init__(self, mapping: dict[str, str]) -> None:
        self.mapping = mapping
        self.restorers: dict[int, StreamRestorer] = {}

    def _restorer(self, index: int) -> StreamRestorer:
        r = self.restorers.get(index)
        if r is None:
            r = self.restorers[index] = StreamRestorer(self.mapping)
        return r

    def chunk(self, chunk: JSON) -> None:
        for index, holder, key in chunk_texts(chunk):
            holder[key] = self._restorer(index).feed(holder[key])
        for choice in chunk.get("choices") or ():
            if isinstance(choice, dict) and choice.get("finish_reason") is not None:
                held = self._restorer(int(choice.get("index") or 0)).flush()
                if held:
                    _append_text(choice, held)

    async def end(self) -> list[JSON]:
        extra: list[JSON] = []
        for index, r in self.restorers.items():
            held = r.flush()
            if held:
                piece = {"index": index, "delta": {"content": held}, "finish_reason": None}
                extra.append({"object": "chat.completion.chunk", "choices": [piece]})
        return extra


def _append_text(choice: JSON, text: str) -> None:
    delta = choice.get("delta")
    if isinstance(delta, dict):
        delta["content"] = (delta.get("content") or "") + text
    else:
        choice["text"] = (choice.get("text") or "") + text
