"""SSE relay.  A stream either ends with ``data: [DONE]`` or with an explicit error event.

If the upstream fails after the first chunk was sent, the client receives
``data: {"error": {...}}`` and no ``[DONE]``: the official ``openai`` client
raises on it, so a cut stream never looks complete.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import orjson
from starlette.types import Receive, Scope, Send

from polyroute.engine import StreamStart
from polyroute.errors import PolyrouteError, UpstreamTimeout
from polyroute.server.errors import error_body
from polyroute.types import JSON, Trace

DONE = b"data: [DONE]\n\n"
#: a wire format's framing of a stream: ``relay`` (OpenAI SSE) or a codec's
Pieces = Callable[[StreamStart, Trace], AsyncIterator[bytes]]


def sse(chunk: JSON) -> bytes:
    return b"data: " + orjson.dumps(chunk) + b"\n\n"


class RelayResponse:
    """A pure ASGI streaming response that always releases its upstream stream and logs
    once, even when the client went away before the body was iterated.

    A watcher waits for the client's ``http.disconnect`` and cancels the relay at once
    (wherever it waits: the upstream or the client), so a client that left, or one
    whose connection was cut because it stopped reading, frees the upstream stream and
    the request's slot.
    """

    def __init__(
        self,
        start: StreamStart,
        trace: Trace,
        on_end: Callable[[int], None],
        headers: dict[str, str],
        pieces: Pieces | None = None,
    ) -> None:
        self._start = start
        self._trace = trace
        self._on_end = on_end
        self._pieces = pieces or relay
        self._headers = [(b"content-type", b"text/event-stream; charset=utf-8")] + [
            (k.encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()
        ]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        relay_task = asyncio.current_task()
        assert relay_task is not None
        watcher = asyncio.create_task(_until_disconnect(receive))
        left = False

        def on_disconnect(w: asyncio.Task[None]) -> None:
            nonlocal left
            if not w.cancelled():
                left = True
                relay_task.cancel()

        watcher.add_done_callback(on_disconnect)
        try:
            await send({"type": "http.response.start", "status": 200, "headers": self._headers})
            async for piece in self._pieces(self._start, self._trace):
                await send({"type": "http.response.body", "body": piece, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        except asyncio.CancelledError:
            if not left or relay_task.uncancel() > 0:
                raise  # cancelled by someone else (shutdown): not ours to swallow
        finally:
            watcher.remove_done_callback(on_disconnect)
            watcher.cancel()
            await self._start.rest.aclose()
            if self._trace.outcome == "streaming":
                self._trace.outcome = "client_disconnected"
            self._on_end(_STATUS.get(self._trace.outcome, 200))


async def _until_disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


_STATUS = {"stream_cut": 502, "client_disconnected": 499}


async def relay(start: StreamStart, trace: Trace) -> AsyncIterator[bytes]:
    name = start.model
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
