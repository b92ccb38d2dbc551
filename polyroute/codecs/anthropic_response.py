"""The pipeline's OpenAI answers -> Anthropic Messages answers, plain and streamed (pure).

- :func:`encode_response`: a ``chat.completion`` -> a ``message``;
- :class:`StreamEncoder`: ``chat.completion.chunk`` s -> Anthropic stream events
  (``message_start``, ``ping``, ``content_block_start`` / ``_delta`` / ``_stop``,
  ``message_delta``, ``message_stop``), formatted by :func:`sse`;
- :func:`error_body`: Anthropic's error JSON for an HTTP status.
"""

from __future__ import annotations

import uuid
from typing import Any

import orjson

from polyroute.codecs.anthropic_tables import STOP_REASONS, error_type
from polyroute.types import JSON

Event = tuple[str, JSON]


def sse(event: str, data: JSON) -> bytes:
    """One server-sent event: ``event: <name>\\ndata: <json>\\n\\n``."""
    return b"event: " + event.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


#: the keep-alive event Anthropic sends (clients ignore it)
PING = sse("ping", {"type": "ping"})


def error_body(status: int, message: str) -> JSON:
    """Anthropic's error shape: ``{"type": "error", "error": {"type": ..., "message": ...}}``
    (``invalid_request_error`` for 400, ``overloaded_error`` for 503/529, ...)."""
    return {"type": "error", "error": {"type": error_type(status), "message": message}}


def obj(value: Any) -> JSON:
    """``value`` if it is a JSON object, else ``{}``."""
    return value if isinstance(value, dict) else {}


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def message_id(answer_id: Any) -> str:
    """``msg_<the OpenAI id>``, or ``msg_<random hex>`` when there is none."""
    if isinstance(answer_id, str) and answer_id:
        return answer_id if answer_id.startswith("msg_") else f"msg_{answer_id}"
    return f"msg_{uuid.uuid4().hex}"


def tool_id(call_id: Any) -> str:
    """The OpenAI call id (the client echoes it back), or ``toolu_<random hex>``."""
    return call_id if isinstance(call_id, str) and call_id else f"toolu_{uuid.uuid4().hex}"


def stop_reason(finish: Any, matched: Any, has_tools: bool) -> tuple[str, str | None]:
    """(``stop_reason``, ``stop_sequence``) for an OpenAI ``finish_reason``.

    ``matched`` is the stop string some backends (vLLM) report in ``choice.stop_reason``;
    a ``stop`` answer that carries tool calls (some servers say so) is ``tool_use``.
    """
    reason = STOP_REASONS.get(finish, "end_turn") if isinstance(finish, str) else "end_turn"
    if reason == "end_turn" and has_tools:
        return "tool_use", None
    if reason == "end_turn" and isinstance(matched, str) and matched:
        return "stop_sequence", matched
    return reason, None


def anthropic_usage(usage: Any) -> JSON:
    """OpenAI usage -> Anthropic usage: cached prompt tokens are ``cache_read_input_tokens``
    and not ``input_tokens`` (the inverse of the backend's ``openai_usage``)."""
    u = obj(usage)
    cached = _count(obj(u.get("prompt_tokens_details")).get("cached_tokens"))
    return {
        "input_tokens": max(_count(u.get("prompt_tokens")) - cached, 0),
        "output_tokens": _count(u.get("completion_tokens")),
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": cached,
    }


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            p["text"] for p in content if isinstance(p, dict) and isinstance(p.get("text"), str)
        )
    return ""


def tool_input(arguments: Any) -> JSON | None:
    """A call's ``arguments`` as a JSON object; ``{}`` when empty; None when it is not one."""
    if isinstance(arguments, dict):
        return arguments
    if arguments is None or (isinstance(arguments, str) and not arguments.strip()):
        return {}
    if not isinstance(arguments, str):
        return None
    try:
        parsed = orjson.loads(arguments)
    except orjson.JSONDecodeError:
        return None
    return parsed if isinstance(parsed, dict) else None


def _tool_use(call: Any) -> list[JSON]:
    fn = call.get("function") if isinstance(call, dict) else None
    if not isinstance(fn, dict):
        return []
    name = fn.get("name") if isinstance(fn.get("name"), str) else ""
    block: JSON = {"type": "tool_use", "id": tool_id(call.get("id")), "name": name}
    parsed = tool_input(fn.get("arguments"))
    block["input"] = parsed if parsed is not None else {}
    if parsed is not None:
        return [block]
    note = f"[tool call {name!r}: arguments were not a JSON object: {fn.get('arguments')!s}]"
    return [{"type": "text", "text": note}, block]


def encode_response(answer: JSON, model: str) -> JSON:
    """An OpenAI ``chat.completion`` -> an Anthropic ``message`` reporting ``model``.

    Text (or a ``refusal``) becomes one text block, each tool call a ``tool_use`` block
    whose ``input`` is parsed from ``arguments``.  Arguments that are not a JSON object
    give ``input: {}`` preceded by a text block quoting them, so nothing is lost silently.
    Choices after the first are dropped (Anthropic has one answer).
    """
    choices = answer.get("choices")
    choice = obj(choices[0] if isinstance(choices, list) and choices else None)
    msg = obj(choice.get("message"))
    content: list[JSON] = []
    text = _text(msg.get("content")) or _text(msg.get("refusal"))
    if text:
        content.append({"type": "text", "text": text})
    calls = msg.get("tool_calls")
    calls = calls if isinstance(calls, list) else []
    for call in calls:
        content.extend(_tool_use(call))
    reason, sequence = stop_reason(
        choice.get("finish_reason"), choice.get("stop_reason"), bool(calls)
    )
    return {
        "id": message_id(answer.get("id")),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": reason,
        "stop_sequence": sequence,
        "usage": anthropic_usage(answer.get("usage")),
    }
