"""The one mapping per concept between OpenAI chat and the Anthropic Messages API.

Both directions use these tables: the outbound Anthropic backend
(:mod:`polyroute.backends.anthropic_translate`) and the inbound ``/v1/messages``
codec (:mod:`polyroute.codecs.anthropic_messages`).

- stop reasons: :data:`FINISH_REASONS` (Anthropic -> OpenAI) and
  :data:`STOP_REASONS` (OpenAI -> Anthropic);
- ``tool_choice``: :data:`TOOL_CHOICE_TYPES` (OpenAI string -> Anthropic ``type``)
  and :data:`OPENAI_TOOL_CHOICES`, its inverse;
- images: :func:`image_block` (OpenAI ``image_url`` -> Anthropic image block) and
  :func:`image_url` (Anthropic image block -> OpenAI ``image_url`` part);
- errors: :data:`ERROR_TYPES` (HTTP status -> Anthropic ``error.type``).
"""

from __future__ import annotations

from typing import Any

from polyroute.errors import InvalidRequest
from polyroute.types import JSON

#: Anthropic ``stop_reason`` -> OpenAI ``finish_reason``
FINISH_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}

#: OpenAI ``finish_reason`` -> Anthropic ``stop_reason`` (``stop`` becomes ``stop_sequence``
#: instead when the backend names the stop string that matched)
STOP_REASONS = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}

#: OpenAI ``tool_choice`` string -> Anthropic ``tool_choice.type``
TOOL_CHOICE_TYPES = {"auto": "auto", "none": "none", "required": "any"}
#: Anthropic ``tool_choice.type`` -> OpenAI ``tool_choice`` string (``tool`` names a function)
OPENAI_TOOL_CHOICES = {v: k for k, v in TOOL_CHOICE_TYPES.items()}

#: HTTP status -> Anthropic ``error.type``; another 4xx is ``invalid_request_error``,
#: another 5xx ``api_error``
ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    408: "timeout_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    502: "api_error",
    503: "overloaded_error",
    504: "timeout_error",
    529: "overloaded_error",
}


def error_type(status: int) -> str:
    """Anthropic's ``error.type`` for an HTTP status."""
    known = ERROR_TYPES.get(status)
    if known is not None:
        return known
    return "invalid_request_error" if 400 <= status < 500 else "api_error"


def image_block(image_url: Any) -> JSON:
    """An OpenAI ``image_url`` (object or bare string) -> an Anthropic image block."""
    url = image_url.get("url") if isinstance(image_url, dict) else image_url
    if not isinstance(url, str) or not url:
        raise InvalidRequest("`image_url.url` must be a non-empty string")
    if not url.startswith("data:"):
        return {"type": "image", "source": {"type": "url", "url": url}}
    header, sep, data = url[5:].partition(",")
    media_type, _, encoding = header.partition(";")
    if not sep or encoding != "base64" or not media_type:
        raise InvalidRequest("image data URLs must look like data:<media type>;base64,<data>")
    return {"type": "image", "source": {"type": "base64", "media_type": media_type, "data": data}}


def image_url(block: JSON, where: str) -> JSON:
    """An Anthropic image block -> an OpenAI ``image_url`` part (base64 as a data URL).

    ``where`` names the block in error messages (``messages[0].content[1]``).
    """
    source = block.get("source")
    if not isinstance(source, dict):
        raise InvalidRequest(f"{where}.source: expected an object")
    kind = source.get("type")
    if kind == "base64":
        media_type, data = source.get("media_type"), source.get("data")
        if not isinstance(media_type, str) or not media_type:
            raise InvalidRequest(f"{where}.source.media_type: expected a non-empty string")
        if not isinstance(data, str) or not data:
            raise InvalidRequest(f"{where}.source.data: expected a non-empty string")
        url = f"data:{media_type};base64,{data}"
    elif kind == "url":
        given = source.get("url")
        if not isinstance(given, str) or not given:
            raise InvalidRequest(f"{where}.source.url: expected a non-empty string")
        url = given
    else:
        raise InvalidRequest(f"{where}.source.type: expected base64 or url")
    return {"type": "image_url", "image_url": {"url": url}}
