"""SSE relay.  A stream either ends with ``data: [DONE]`` or with an explicit error event.

If the upstream fails after the first chunk was sent, the client receives
``data: {"error": {...}}`` and no ``[DONE]``: the official ``openai`` client
raises on it, so a cut stream never looks complete.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import orjson
from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from polyroute.engine import StreamStart
from polyroute.errors import PolyrouteError, UpstreamTimeout
from polyroute.server.errors import error_body
from polyroute.types import JSON, Trace

DONE = b"data: [DONE]\n\n"


def sse(chunk: JSON) -> bytes:
    return b"data: " + orjson.dumps(chunk) + b"\n\n"


class RelayResponse(StreamingResponse):
    """A streaming response that always releases its upstream stream and logs once,
    even when the client went away before the body was iterated."""

    def __init__(
        self,
        start: StreamStart,
        trace: Trace,
        on_end: Callable[[int], None],
        headers: dict[str, str],
    ) -> None:
        self._start = start
        self._trace = trace
        self._on_end = on_end
        super().__init__(relay(start, trace), media_type="text/event-stream", headers=headers)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            await self._start.rest.aclose()
            if self._trace.outcome == "streaming":
                self._trace.outcome = "client_disconnected"
            self._on_end(_STATUS.get(self._trace.outcome, 200))


_STATUS = {"stream_cut": 502, "client_disconnected": 499}


async def relay(start: StreamStart, trace: Trace) -> AsyncIterator[bytes]:
    name = start.backend.name
    try:
        start.first["model"] = name
        yield sse(start.first)
        async for chunk in start.rest:
            chunk["model"] = name
            yield sse(chunk)
        yield DONE
    except PolyrouteError as exc:
        # the backend's name, never its URL: details are in the logged trace
        reason = "timed out" if isinstance(exc, UpstreamTimeout) else "broke"
        message = f"the stream from {name} {reason} after it started (trace {trace.trace_id})"
        yield b"data: " + error_body(message, "upstream_error", "stream_interrupted") + b"\n\n"
    except BaseException:
        if trace.outcome == "streaming":
            trace.outcome = "client_disconnected"
        raise
