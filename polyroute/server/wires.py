"""Wire formats the gateway speaks, each a thin codec over the one pipeline.

The engine sees OpenAI chat (or completions) bodies only.  A :class:`Wire` says how an
endpoint's body becomes that (``decode``), how the answer goes back (``encode``), how
a stream is framed (``stream``) and which error shape the endpoint uses.
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
from polyroute.types import JSON, Endpoint, Trace


@dataclass(frozen=True, slots=True)
class Wire:
    #: the endpoint's name in logs and metrics
    name: str
    #: what the pipeline sees
    endpoint: Endpoint
    errors: Literal["openai", "anthropic"]
    #: a parsed body -> the pipeline's body; raises InvalidRequest naming the field
    decode: Callable[[JSON], JSON]
    #: the pipeline's answer (and the trace) -> the wire's answer
    encode: Callable[[JSON, Trace], JSON]
    #: the wire's stream framing, given the request's parsed body
    stream: Callable[[JSON], Pieces]


def _checked(endpoint: Endpoint) -> Callable[[JSON], JSON]:
    def decode(body: JSON) -> JSON:
        check_body(body, endpoint)
        return body

    return decode


def _same(answer: JSON, trace: Trace) -> JSON:
    return answer


def _relay(body: JSON) -> Pieces:
    return relay


def _anthropic_decode(body: JSON) -> JSON:
    chat = am.decode_request(body)
    check_body(chat, "chat")
    return chat


def _anthropic_encode(answer: JSON, trace: Trace) -> JSON:
    return am.encode_response(answer, trace.model)


def _anthropic_stream(body: JSON) -> Pieces:
    input_tokens = int(am.count_tokens(body)["input_tokens"])

    async def pieces(start: StreamStart, trace: Trace) -> AsyncIterator[bytes]:
        encoder = am.StreamEncoder(start.model, input_tokens)
        try:
            for event in encoder.feed(start.first):
                yield am.sse(*event)
            async for chunk in start.rest:
                for event in encoder.feed(chunk):
                    yield am.sse(*event)
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
    "messages", "chat", "anthropic", _anthropic_decode, _anthropic_encode, _anthropic_stream
)

__all__ = ["CHAT", "COMPLETIONS", "MESSAGES", "Wire"]
