"""The Anthropic provider: OpenAI-shaped requests in and out, the Messages API on the wire.

Endpoint rule: requests go to ``{base_url}/messages`` when ``base_url`` ends in
``/v1`` and to ``{base_url}/v1/messages`` otherwise, so both
``https://api.anthropic.com`` and ``https://api.anthropic.com/v1`` work.  The key
is sent as ``x-api-key`` with an ``anthropic-version`` header.

Translation lives in :mod:`polyroute.backends.anthropic_translate`.  A request that
came in as an Anthropic Messages body (``POST /v1/messages``, ``Request.native``) is
sent as it came, only ``model`` and ``stream`` set, so fields chat cannot express
(``thinking``, ``cache_control``, ``top_k``, server tools, fields Anthropic adds later)
reach the upstream untouched; its answer (or the stream's events) is kept for the client
beside the chat view the pipeline reads.  Streams
are Anthropic SSE events turned into OpenAI ``chat.completion.chunk`` (or
``text_completion``) chunks; the chunk carrying ``finish_reason`` is only
released on ``message_stop``, and a stream that ends before it or carries an
``error`` event raises ``UpstreamError``, so a cut stream never looks complete.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any

import aiohttp
import orjson

from polyroute.backends.anthropic_translate import (
    finish_reason,
    from_anthropic,
    openai_usage,
    to_anthropic,
)
from polyroute.backends.errors import transport_error
from polyroute.backends.openai import KEEPALIVE_S, HttpProvider, SSEStream
from polyroute.errors import UpstreamError
from polyroute.jsonio import dumps_body
from polyroute.types import JSON, Endpoint, Native, Request


class StreamTranslator:
    """Turns Anthropic stream events into OpenAI chunks, one event at a time."""

    def __init__(
        self, endpoint: Endpoint, upstream_model: str, include_usage: bool = False
    ) -> None:
        self.endpoint = endpoint
        self.include_usage = include_usage
        self.done = False
        self._id = "msg"
        self._model = upstream_model
        self._created = int(time.time())
        self._tool_index: dict[int, int] = {}  # content block index -> OpenAI tool_calls index
        self._usage: JSON = {}
        self._stop_reason: Any = None

    def feed(self, event: JSON) -> list[JSON]:
        """The OpenAI chunks for one event; raises ``UpstreamError`` on an ``error`` event."""
        kind = event.get("type")
        if kind == "message_start":
            return self._start(event.get("message"))
        if kind == "content_block_start":
            return self._block_start(event)
        if kind == "content_block_delta":
            return self._block_delta(event)
        if kind == "message_delta":
            delta = event.get("delta")
            if isinstance(delta, dict):
                self._stop_reason = delta.get("stop_reason")
            self._merge_usage(event.get("usage"))
            return []
        if kind == "message_stop":
            return self._stop()
        if kind == "error":
            err = event.get("error")
            err = err if isinstance(err, dict) else {}
            kind, message = err.get("type", "error"), err.get("message", "")
            raise UpstreamError(f"anthropic stream error event: {kind}: {message}")
        return []  # ping, content_block_stop, and event types Anthropic may add later

    def _start(self, message: Any) -> list[JSON]:
        if isinstance(message, dict):
            self._id = str(message.get("id") or self._id)
            self._model = str(message.get("model") or self._model)
            self._merge_usage(message.get("usage"))
        return [self._chunk({"role": "assistant", "content": ""})] if self._chat else []

    def _block_start(self, event: JSON) -> list[JSON]:
        block = event.get("content_block")
        if not isinstance(block, dict):
            return []
        if block.get("type") == "text" and block.get("text"):
            return [self._chunk({"content": block["text"]})]
        if block.get("type") != "tool_use" or not self._chat:
            return []
        index = len(self._tool_index)
        self._tool_index[event.get("index", -1)] = index
        function = {"name": block.get("name"), "arguments": ""}
        call = {"index": index, "id": block.get("id"), "type": "function", "function": function}
        return [self._chunk({"tool_calls": [call]})]

    def _block_delta(self, event: JSON) -> list[JSON]:
        delta = event.get("delta")
        if not isinstance(delta, dict):
            return []
        if delta.get("type") == "text_delta" and delta.get("text"):
            return [self._chunk({"content": delta["text"]})]
        index = self._tool_index.get(event.get("index", -1))
        if (
            delta.get("type") == "input_json_delta"
            and delta.get("partial_json")
            and index is not None
        ):
            call = {"index": index, "function": {"arguments": delta["partial_json"]}}
            return [self._chunk({"tool_calls": [call]})]
        return []  # thinking, signatures, citations: no OpenAI counterpart

    def _stop(self) -> list[JSON]:
        self.done = True
        chunks = [self._chunk({}, finish_reason(self._stop_reason))]
        if self.include_usage:
            usage_chunk = self._chunk({})
            usage_chunk["choices"] = []
            usage_chunk["usage"] = openai_usage(self._usage)
            chunks.append(usage_chunk)
        return chunks

    def _merge_usage(self, usage: Any) -> None:
        if isinstance(usage, dict):
            self._usage.update({k: v for k, v in usage.items() if isinstance(v, int)})

    @property
    def _chat(self) -> bool:
        return self.endpoint == "chat"

    def _chunk(self, delta: JSON, finish: str | None = None) -> JSON:
        if self._chat:
            obj = "chat.completion.chunk"
            choice: JSON = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        else:
            obj = "text_completion"
            text = delta.get("content", "")
            choice = {"index": 0, "text": text, "logprobs": None, "finish_reason": finish}
        return {
            "id": self._id,
            "object": obj,
            "created": self._created,
            "model": self._model,
            "choices": [choice],
        }


class AnthropicStream(SSEStream):
    """An Anthropic SSE response iterated as OpenAI chunks; strict about ``message_stop``."""

    def __init__(
        self,
        resp: aiohttp.ClientResponse,
        idle_timeout_s: float,
        what: str,
        translator: StreamTranslator,
        native: Native | None = None,
    ) -> None:
        super().__init__(resp, idle_timeout_s, what)
        self._translator = translator
        # a native stream keeps the upstream's own events for the client, in order (the
        # wire relays them as the chat chunks they map to pass through the pipeline)
        self._native = native
        self._kept: list[JSON] | None = None
        if native is not None:
            self._kept = native.events = []

    async def _events(self) -> AsyncIterator[JSON]:
        content = self._resp.content
        try:
            while not self._translator.done:
                async with asyncio.timeout(self._idle):
                    line = await content.readline()
                if not line:
                    raise UpstreamError(f"{self._what}: stream ended before message_stop")
                if not line.startswith(b"data:"):
                    continue  # `event:` lines repeat the `type` field of the data
                try:
                    event = orjson.loads(line[5:].strip())
                except orjson.JSONDecodeError:
                    raise UpstreamError(f"{self._what}: malformed stream event") from None
                if isinstance(event, dict):
                    chunks = self._translator.feed(event)
                    if self._kept is not None:
                        self._kept.append(event)
                    for chunk in chunks:
                        yield chunk
        except UpstreamError:
            self._disown()
            raise
        except Exception as exc:
            self._disown()
            raise transport_error(exc, f"{self._what}: stream") from None
        finally:
            self._resp.release()

    def _disown(self) -> None:
        """A failed stream's events are not the client's (another backend may answer)."""
        if self._native is not None and self._native.events is self._kept:
            self._native.events = None


class AnthropicProvider(HttpProvider):
    """Speaks the Anthropic Messages API for OpenAI chat and text-completion requests."""

    def __init__(
        self,
        base_url: str,
        api_key: str | None = None,
        headers: Mapping[str, str] | None = None,
        anthropic_version: str = "2023-06-01",
        keepalive_s: float = KEEPALIVE_S,
    ) -> None:
        auth = {"x-api-key": api_key} if api_key else {}
        super().__init__(
            base_url,
            {"anthropic-version": anthropic_version, **(headers or {}), **auth},
            keepalive_s,
        )
        self.path = "/messages" if self.base_url.endswith("/v1") else "/v1/messages"

    async def complete(self, request: Request, upstream_model: str, timeout_s: float) -> JSON:
        native = _native(request)
        body = (
            {**native.body, "model": upstream_model, "stream": False}
            if native
            else to_anthropic(request, upstream_model, stream=False)
        )
        payload = dumps_body(body)
        data = await self._post(self.path, payload, timeout_s)
        answer = from_anthropic(data, request.endpoint, upstream_model)
        if native:
            native.answer, native.chat = data, answer
        return answer

    async def open_stream(
        self, request: Request, upstream_model: str, timeout_s: float, idle_timeout_s: float
    ) -> AnthropicStream:
        native = _native(request)
        body = (
            {**native.body, "model": upstream_model, "stream": True}
            if native
            else to_anthropic(request, upstream_model, stream=True)
        )
        payload = dumps_body(body)
        resp = await self._open_sse(self.path, payload, timeout_s)
        options = request.body.get("stream_options")
        include_usage = isinstance(options, dict) and options.get("include_usage") is True
        translator = StreamTranslator(request.endpoint, upstream_model, include_usage)
        what = f"POST {self.base_url}{self.path}"
        return AnthropicStream(resp, idle_timeout_s, what, translator, native)


def _native(request: Request) -> Native | None:
    """The request's own Messages body, when it came in as one (passed through natively)."""
    native = request.native
    return native if native is not None and native.protocol == "anthropic" else None
