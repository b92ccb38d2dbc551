"""The Anthropic Messages API (``POST /v1/messages``) as a codec over chat-shaped bodies.

::

    Messages body ──decode_request──▶ chat body ──engine──▶ chat.completion
                                                              │
    message       ◀──encode_response────────────────────────────┘
    stream events ◀──StreamEncoder.feed/finish── chat.completion.chunk...

The pipeline only sees OpenAI chat bodies (``Request(body, "chat", headers)``); this
module is the Anthropic face of it, built from pure functions:

- :func:`decode_request` (:mod:`~polyroute.codecs.anthropic_request`): validate and
  translate a request; a malformed one raises ``InvalidRequest`` (a ``FieldError``
  whose ``param`` is the field path);
- :func:`encode_response` and :class:`StreamEncoder`
  (:mod:`~polyroute.codecs.anthropic_response`, :mod:`~polyroute.codecs.anthropic_stream`):
  translate the answer, plain or streamed; :func:`sse` formats an event, :data:`PING`
  is the keep-alive;
- :func:`error_body`: errors in Anthropic's shape (``error_event`` for a stream);
- :func:`count_tokens`: ``POST /v1/messages/count_tokens``, answered locally.

The mapping tables (stop reasons, tool choice, images, error types) are shared with
the outbound Anthropic backend through :mod:`polyroute.codecs.anthropic_tables`.
"""

from __future__ import annotations

from polyroute.codecs.anthropic_request import TOOL_ERROR_PREFIX, decode_request
from polyroute.codecs.anthropic_response import PING, Event, encode_response, error_body, sse
from polyroute.codecs.anthropic_stream import StreamEncoder
from polyroute.errors import FieldError
from polyroute.jsonio import dumps_body
from polyroute.tokens import estimate_tokens
from polyroute.types import JSON

#: what one image counts for in :func:`count_tokens`: Anthropic bills about
#: width * height / 750 tokens, about 1,600 for an image at its size limit
IMAGE_TOKENS = 1600


def error_event(status: int, message: str) -> bytes:
    """An ``error`` stream event, for a failure after the stream has begun."""
    return sse("error", error_body(status, message))


def count_tokens(body: JSON) -> JSON:
    """``{"input_tokens": N}`` for a Messages body (``max_tokens`` not needed).

    An estimate, not a tokenizer's count: :func:`polyroute.tokens.estimate_tokens` over
    the decoded request's text (system, messages, tool calls and results, tool
    definitions) plus :data:`IMAGE_TOKENS` per image.  Raises ``InvalidRequest`` like
    :func:`decode_request`.
    """
    chat = decode_request(body, require_max_tokens=False)
    texts: list[str] = []
    images = 0
    for msg in chat["messages"]:
        content = msg.get("content")
        if isinstance(content, str):
            texts.append(content)
        for part in content if isinstance(content, list) else []:
            if part.get("type") == "image_url":
                images += 1
            else:
                texts.append(part.get("text", ""))
        for call in msg.get("tool_calls", []):
            texts.append(call["function"]["name"] + call["function"]["arguments"])
    for tool in chat.get("tools", []):
        texts.append(dumps_body(tool["function"]).decode())
    text = "\n".join(t for t in texts if t)
    tokens = (estimate_tokens(text) if text else 0) + images * IMAGE_TOKENS
    return {"input_tokens": tokens}


__all__ = [
    "IMAGE_TOKENS",
    "PING",
    "TOOL_ERROR_PREFIX",
    "Event",
    "FieldError",
    "StreamEncoder",
    "count_tokens",
    "decode_request",
    "encode_response",
    "error_body",
    "error_event",
    "sse",
]
