"""Wire formats the gateway speaks, each a thin codec over the one pipeline.

The engine sees OpenAI chat (or completions) bodies only.  A :class:`Wire` says how an
endpoint's body becomes that (``decode``), how the answer goes back (``encode``), how
a stream is framed (``stream``) and which error shape the endpoint uses.

A wire with a ``native`` protocol keeps the client's own body on the request
(``Request.native``): a backend of the same protocol is sent it untouched and its own
answer or events go back to the client as they came (only ``model`` renamed), so fields
chat cannot express survive the trip; any other backend, or a plugin that edits the
request or the answer, gets the translation.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Literal

from polyroute.codecs import anthropic_messages as am
from polyroute.engine import StreamStart
from polyroute.errors import PolyrouteError
from polyroute.server.streaming import Pieces, relay
from polyroute.server.validate import check_body
from polyroute.types import JSON, Endpoint, Request, Trace


@dataclass(frozen=True, slots=True)
class Wire:
    #: the endpoint's name in logs and metrics
    name: str
    #: what the pipeline sees
    endpoint: Endpoint
    errors: Literal["openai", "anthropic"]
    #: a parsed body -> the pipeline's body; raises InvalidRequest naming the field
    decode: Callable[[JSON], JSON]
    #: the pipeline's answer (with the trace and the request) -> the wire's answer
    encode: Callable[[JSON, Trace, Request], JSON]
    #: the wire's stream framing, given the request's parsed body and the request
    stream: Callable[[JSON, Request], Pieces]
    #: the protocol of the client's own body, kept for same-protocol backends
    native: str | None = None


def _checked(endpoint: Endpoint) -> Callable[[JSON], JSON]:
    def decode(body: JSON) -> JSON:
        check_body(body, endpoint)
        return body

    return decode


def _same(answer: JSON, trace: Trace, request: Request) -> JSON:
    return answer


def _relay(body: JSON, request: Request) -> Pieces:
    return relay


def _anthropic_decode(body: JSON) -> JSON:
    chat = am.decode_request(body)
    check_body(chat, "chat")
    return chat


def _anthropic_encode(answer: JSON, trace: Trace, request: Request) -> JSON:
    native = request.native
    if native is not None and native.answer is not None and native.chat is answer:
        trace.events.append({"wire": "native"})
        return {**native.answer, "model": trace.model}
    return am.encode_response(answer, trace.model)


def _native_event(event: JSON, model: str) -> bytes:
    kind = str(event.get("type", "event"))
    message = event.get("message")
    if kind == "message_start" and isinstance(message, dict):
        event = {**event, "message": {**message, "model": model}}
    return am.sse(kind, event)


def _anthropic_stream(body: JSON, request: Request) -> Pieces:
    input_tokens = int(am.count_tokens(body)["input_tokens"])

    async def pieces(start: StreamStart, trace: Trace) -> AsyncIterator[bytes]:
        native = request.native
        events = native.events if native is not None else None
        if events is not None:
            trace.events.append({"wire": "native"})
        encoder = am.StreamEncoder(start.model, input_tokens)

        def framed(chunk: JSON) -> bytes:
            if events is None:
                return b"".join(am.sse(*event) for event in encoder.feed(chunk))
            out = b"".join(_native_event(event, start.model) for event in events)
            events.clear()  # the upstream's own events, as the chunks they map to arrive
            return out

        try:
            yield framed(start.first)
            async for chunk in start.rest:
                if piece := framed(chunk):
                    yield piece
            if events is not None:
                if piece := framed({}):
                    yield piece
            else:
                for event in encoder.finish():
                    yield am.sse(*event)
        except PolyrouteError as exc:
            # after the stream began: an error event, never a message_stop
            message = (
                f"the stream from {start.model} broke after it started (trace {trace.trace_id})"
            )
            yield am.error_event(exc.status if exc.status >= 500 else 502, message)
        except BaseException:
            if trace.outcome == "streaming":
                trace.outcome = "client_disconnected"
            raise

    return pieces


CHAT = Wire("chat", "chat", "openai", _checked("chat"), _same, _relay)
COMPLETIONS = Wire("completions", "completions", "openai", _checked("completions"), _same, _relay)
MESSAGES = Wire(
    "messages",
    "chat",
    "anthropic",
    _anthropic_decode,
    _anthropic_encode,
    _anthropic_stream,
    native="anthropic",
)

__all__ = ["CHAT", "COMPLETIONS", "MESSAGES", "Wire"]
