"""Pure translation between OpenAI chat/text completions and the Anthropic Messages API.

Requests (:func:`to_anthropic`):

- ``system`` and ``developer`` messages, wherever they appear, are joined (blank
  line between) into the top-level ``system`` string;
- ``user``/``assistant``/``tool`` messages become content blocks; consecutive
  messages of the same Anthropic role are merged (so parallel tool results share
  one user turn, as Anthropic requires); empty text is dropped;
- assistant ``tool_calls`` become ``tool_use`` blocks (arguments parsed from their
  JSON string); ``role: tool`` results become ``tool_result`` blocks;
- ``image_url`` parts: ``data:`` URLs become base64 image sources, others URL sources;
- ``max_completion_tokens``/``max_tokens`` (default 1024), ``temperature``,
  ``top_p``, ``stop`` -> ``stop_sequences``, function ``tools``, ``tool_choice``
  (with ``parallel_tool_calls: false`` -> ``disable_parallel_tool_use``) and
  ``user`` -> ``metadata.user_id``.  Other OpenAI fields have no counterpart and
  are dropped.

The stop-reason, tool-choice and image tables are shared with the inbound codec and
live in :mod:`polyroute.codecs.anthropic_tables`.

A legacy text-completion prompt is sent as one user message.  Input that cannot
be expressed in the Messages API raises ``InvalidRequest`` before any network I/O.
Responses (:func:`from_anthropic`) become ``chat.completion`` or ``text_completion``.
"""

from __future__ import annotations

import time
from typing import Any

import orjson

from polyroute.codecs.anthropic_tables import FINISH_REASONS, TOOL_CHOICE_TYPES, image_block
from polyroute.errors import InvalidRequest, UpstreamError
from polyroute.types import JSON, Endpoint, Request

DEFAULT_MAX_TOKENS = 1024


def to_anthropic(request: Request, upstream_model: str, stream: bool) -> JSON:
    """The Anthropic Messages body for an OpenAI chat or text-completion request."""
    body = request.body
    if request.endpoint == "completions":
        system, messages = None, [{"role": "user", "content": [_text(_prompt(body))]}]
    else:
        system, messages = convert_messages(request.messages)
    out: JSON = {"model": upstream_model, "messages": messages}
    if system:
        out["system"] = system
    out["max_tokens"] = _max_tokens(body)
    for name in ("temperature", "top_p"):
        if isinstance(body.get(name), int | float):
            out[name] = body[name]
    stop = body.get("stop")
    stops = [stop] if isinstance(stop, str) else stop if isinstance(stop, list) else []
    if any(isinstance(s, str) and s for s in stops):
        out["stop_sequences"] = [s for s in stops if isinstance(s, str) and s]
    if request.endpoint == "chat":
        out.update(_tool_fields(body))
    if isinstance(body.get("user"), str):
        out["metadata"] = {"user_id": body["user"]}
    if stream:
        out["stream"] = True
    return out


def _max_tokens(body: JSON) -> int:
    for name in ("max_completion_tokens", "max_tokens"):
        value = body.get(name)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return DEFAULT_MAX_TOKENS


def _prompt(body: JSON) -> str:
    prompt = body.get("prompt")
    if isinstance(prompt, list) and len(prompt) == 1:
        prompt = prompt[0]
    if not isinstance(prompt, str):
        raise InvalidRequest("the anthropic provider needs `prompt` to be one string")
    return prompt


# --------------------------------------------------------------------------- messages


def convert_messages(messages: list[JSON]) -> tuple[str | None, list[JSON]]:
    """OpenAI messages -> (Anthropic ``system`` text or None, Anthropic messages)."""
    system: list[str] = []
    out: list[JSON] = []
    for msg in messages:
        role = msg.get("role")
        if role in ("system", "developer"):
            text = _plain_text(msg.get("content"))
            if text:
                system.append(text)
            continue
        if role == "user":
            role, blocks = "user", _content_blocks(msg.get("content"))
        elif role == "assistant":
            blocks = _content_blocks(msg.get("content")) + _tool_use_blocks(msg)
        elif role == "tool":
            role, blocks = "user", [_tool_result_block(msg)]
        else:
            raise InvalidRequest(f"the anthropic provider does not support role {role!r}")
        if not blocks:
            continue
        if out and out[-1]["role"] == role:
            out[-1]["content"].extend(blocks)
        else:
            out.append({"role": role, "content": blocks})
    return ("\n\n".join(system) or None), out


def _text(text: str) -> JSON:
    return {"type": "text", "text": text}


def _plain_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(
            p["text"] for p in content if isinstance(p, dict) and isinstance(p.get("text"), str)
        )
    return ""


def _content_blocks(content: Any) -> list[JSON]:
    if content is None:
        return []
    if isinstance(content, str):
        return [_text(content)] if content else []
    if not isinstance(content, list):
        raise InvalidRequest("message `content` must be a string or a list of parts")
    blocks: list[JSON] = []
    for part in content:
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text" and isinstance(part.get("text"), str):
            if part["text"]:
                blocks.append(_text(part["text"]))
        elif kind == "image_url":
            blocks.append(image_block(part.get("image_url")))
        else:
            raise InvalidRequest(f"the anthropic provider does not support content part {kind!r}")
    return blocks


def _tool_use_blocks(msg: JSON) -> list[JSON]:
    calls = msg.get("tool_calls") or []
    if not isinstance(calls, list):
        raise InvalidRequest("assistant `tool_calls` must be a list")
    blocks: list[JSON] = []
    for call in calls:
        fn = call.get("function") if isinstance(call, dict) else None
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
            raise InvalidRequest("each assistant `tool_calls` entry needs `function.name`")
        args = fn.get("arguments") or "{}"
        try:
            parsed = orjson.loads(args) if isinstance(args, str) else args
        except orjson.JSONDecodeError:
            parsed = None
        if not isinstance(parsed, dict):
            raise InvalidRequest(f"tool call {fn['name']!r}: `arguments` is not a JSON object")
        blocks.append(
            {"type": "tool_use", "id": call.get("id"), "name": fn["name"], "input": parsed}
        )
    return blocks


def _tool_result_block(msg: JSON) -> JSON:
    content = msg.get("content")
    result: str | list[JSON] = content if isinstance(content, str) else _content_blocks(content)
    return {"type": "tool_result", "tool_use_id": msg.get("tool_call_id"), "content": result}


# --------------------------------------------------------------------------- tools


def _tool_fields(body: JSON) -> JSON:
    tools = body.get("tools")
    if not tools:
        return {}
    out: JSON = {"tools": [_tool(t) for t in tools]}
    choice = tool_choice(body.get("tool_choice"))
    if body.get("parallel_tool_calls") is False:
        choice = choice or {"type": "auto"}
        if choice["type"] != "none":
            choice["disable_parallel_tool_use"] = True
    if choice:
        out["tool_choice"] = choice
    return out


def _tool(tool: Any) -> JSON:
    fn = tool.get("function") if isinstance(tool, dict) and tool.get("type") == "function" else None
    if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
        raise InvalidRequest("the anthropic provider supports only `function` tools with a name")
    out: JSON = {"name": fn["name"]}
    if isinstance(fn.get("description"), str):
        out["description"] = fn["description"]
    out["input_schema"] = fn.get("parameters") or {"type": "object", "properties": {}}
    return out


def tool_choice(choice: Any) -> JSON | None:
    """OpenAI ``tool_choice`` -> Anthropic's (None when absent)."""
    if choice is None:
        return None
    if isinstance(choice, str) and choice in TOOL_CHOICE_TYPES:
        return {"type": TOOL_CHOICE_TYPES[choice]}
    fn = choice.get("function") if isinstance(choice, dict) else None
    if isinstance(fn, dict) and isinstance(fn.get("name"), str):
        return {"type": "tool", "name": fn["name"]}
    raise InvalidRequest(f"unsupported `tool_choice`: {choice!r}")


# --------------------------------------------------------------------------- responses


def finish_reason(stop_reason: Any) -> str:
    return FINISH_REASONS.get(stop_reason, "stop") if isinstance(stop_reason, str) else "stop"


def openai_usage(usage: Any) -> JSON:
    """Anthropic usage -> OpenAI usage; prompt tokens include cache reads and writes."""
    u = usage if isinstance(usage, dict) else {}

    def count(name: str) -> int:
        value = u.get(name)
        return value if isinstance(value, int) else 0

    cached = count("cache_read_input_tokens")
    prompt = count("input_tokens") + count("cache_creation_input_tokens") + cached
    completion = count("output_tokens")
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": cached},
    }


def from_anthropic(data: JSON, endpoint: Endpoint, upstream_model: str) -> JSON:
    """An Anthropic ``message`` -> an OpenAI ``chat.completion`` or ``text_completion``."""
    content = data.get("content")
    if data.get("type") != "message" or not isinstance(content, list):
        raise UpstreamError("anthropic upstream: response is not a message")
    blocks = [b for b in content if isinstance(b, dict)]
    text = "".join(
        b["text"] for b in blocks if b.get("type") == "text" and isinstance(b.get("text"), str)
    )
    calls = [_tool_call(b) for b in blocks if b.get("type") == "tool_use"]
    finish = finish_reason(data.get("stop_reason"))
    out: JSON = {
        "id": data.get("id") or "msg",
        "created": int(time.time()),
        "model": data.get("model") or upstream_model,
        "usage": openai_usage(data.get("usage")),
    }
    if endpoint == "completions":
        choice: JSON = {"index": 0, "text": text, "logprobs": None, "finish_reason": finish}
        return {"object": "text_completion", **out, "choices": [choice]}
    message: JSON = {"role": "assistant", "content": text if text or not calls else None}
    if calls:
        message["tool_calls"] = calls
    choice = {"index": 0, "message": message, "logprobs": None, "finish_reason": finish}
    return {"object": "chat.completion", **out, "choices": [choice]}


def _tool_call(block: JSON) -> JSON:
    arguments = orjson.dumps(block.get("input") or {}).decode()
    return {
        "id": block.get("id"),
        "type": "function",
        "function": {"name": block.get("name"), "arguments": arguments},
    }
