"""SSE relay.  A stream either ends with ``data: [DONE]`` or with an explicit error event.

If the upstream fails after the first chunk was sent, the client receives
``data: {"error": {...}}`` and no ``[DONE]``: the official ``openai`` client
raises on it, so a cut stream never looks complete.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import orjson

from polyroute.engine import StreamStart
from polyroute.errors import PolyrouteError
from polyroute.server.errors import error_body
from polyroute.types import JSON, Trace

DONE = b"data: [DONE]\n\n"


def sse(chunk: JSON) -> bytes:
    return b"data: " + orjson.dumps(chunk) + b"\n\n"


async def relay(
    start: StreamStart, trace: Trace, on_end: Callable[[int], None]
) -> AsyncIterator[bytes]:
    name = start.backend.name
    status = 200
    try:
        start.first["model"] = name
        yield sse(start.first)
        async for chunk in start.rest:
            chunk["model"] = name
            yield sse(chunk)
        yield DONE
    except PolyrouteError as exc:
        status = 502
        message = f"upstream stream failed after it started: {exc.message} (trace {trace.trace_id})"
        yield b"data: " + error_body(message, "upstream_error", "stream_interrupted") + b"\n\n"
    except BaseException:
        status = 499
        trace.outcome = "client_disconnected"
        raise
    finally:
        aclose = getattr(start.rest, "aclose", None)
        if aclose is not None:
            await aclose()
        on_end(status)
