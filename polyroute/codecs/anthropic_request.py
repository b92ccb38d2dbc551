"""Anthropic Messages request body -> the pipeline's OpenAI chat body (pure, validating).

See :func:`decode_request` for the mapping and the choices made where the two formats
differ.  Every malformed field raises ``InvalidRequest`` whose message starts with the
field's path (``messages[2].content[0].type: expected ...``).
"""

from __future__ import annotations

from typing import Any

from polyroute.codecs.anthropic_tables import OPENAI_TOOL_CHOICES, image_url
from polyroute.errors import FieldError
from polyroute.jsonio import dumps_body
from polyroute.types import JSON

#: prefix of a ``role: tool`` message whose ``tool_result`` had ``is_error: true``
TOOL_ERROR_PREFIX = "[tool error] "
#: assistant blocks with no OpenAI counterpart, dropped without complaint (a client
#: replays them in multi-turn conversations)
_DROPPED_BLOCKS = frozenset({"thinking", "redacted_thinking"})
#: top-level fields copied under their own name (numbers only)
_SAMPLING = ("temperature", "top_p", "top_k")


def _bad(where: str, expected: str) -> FieldError:
    return FieldError(where, expected)


def decode_request(body: JSON, require_max_tokens: bool = True) -> JSON:
    """An Anthropic Messages body -> an OpenAI chat body (``polyroute.types.Request``,
    endpoint ``chat``).

    - ``model`` is kept (``auto`` when absent, as on the OpenAI routes);
    - ``system`` (a string or text blocks, joined by blank lines) -> a first
      ``system`` message;
    - ``messages``: string content stays a string; blocks become parts: ``text``
      -> text parts (a message of one text block becomes a plain string), ``image``
      -> ``image_url`` parts (base64 sources as data URLs); assistant ``tool_use``
      -> ``tool_calls`` (``input`` JSON-encoded as ``arguments``; content ``None``
      when there is no text); user ``tool_result`` -> one ``role: tool`` message
      each, placed before the rest of that user turn.  A result with
      ``is_error: true`` keeps the flag as a ``[tool error]`` prefix of its text;
      images in a result move to the user message that follows the tool messages.
      ``thinking``/``redacted_thinking`` blocks are dropped; ``cache_control`` is
      ignored everywhere;
    - ``tools`` (custom tools only) -> function tools; ``tool_choice``
      ``auto``/``any``/``tool``/``none`` -> ``auto``/``required``/named
      function/``none``, ``disable_parallel_tool_use`` -> ``parallel_tool_calls:
      false``;
    - ``stop_sequences`` -> ``stop``; ``max_tokens`` (required, unless
      ``require_max_tokens`` is false as for ``count_tokens``), ``temperature``,
      ``top_p``, ``stream`` keep their names; a stream also asks for usage
      (``stream_options.include_usage``) so ``message_delta`` can report it;
    - ``metadata.user_id`` -> ``user``;
    - ``top_k`` is kept under its name (vLLM, llama.cpp, SGLang and Ollama read it);
      every other field (``thinking``, ``service_tier``, ``container``, ...) is
      dropped: the pipeline forwards the chat body verbatim to OpenAI-compatible
      backends, which reject parameters they do not know.
    """
    out: JSON = {}
    model = body.get("model", "auto")
    if not isinstance(model, str) or not model:
        raise _bad("model", "expected a non-empty string")
    out["model"] = model
    messages = _system(body.get("system"))
    raw = body.get("messages")
    if not isinstance(raw, list) or not raw:
        raise _bad("messages", "expected a non-empty list")
    for i, msg in enumerate(raw):
        messages.extend(_message(msg, f"messages[{i}]"))
    out["messages"] = messages
    out.update(_scalars(body, require_max_tokens))
    out.update(_tools(body))
    return out


def _scalars(body: JSON, require_max_tokens: bool) -> JSON:
    out: JSON = {}
    max_tokens = body.get("max_tokens")
    if isinstance(max_tokens, float) and max_tokens.is_integer():
        max_tokens = int(max_tokens)  # 523.0 is an integer in JSON
    if max_tokens is not None or require_max_tokens:
        if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
            raise _bad("max_tokens", "expected a positive integer (it is required)")
        out["max_tokens"] = max_tokens
    for name in _SAMPLING:
        value = body.get(name)
        if value is None:
            continue
        if not isinstance(value, int | float) or isinstance(value, bool):
            raise _bad(name, "expected a number")
        out[name] = value
    stops = body.get("stop_sequences")
    if stops is not None:
        if not isinstance(stops, list) or not all(isinstance(s, str) for s in stops):
            raise _bad("stop_sequences", "expected a list of strings")
        if stops:
            out["stop"] = list(stops)
    stream = body.get("stream")
    if stream is not None and not isinstance(stream, bool):
        raise _bad("stream", "expected a boolean")
    if stream:
        out["stream"] = True
        out["stream_options"] = {"include_usage": True}
    metadata = body.get("metadata")
    if metadata is not None:
        if not isinstance(metadata, dict):
            raise _bad("metadata", "expected an object")
        user = metadata.get("user_id")
        if user is not None and not isinstance(user, str):
            raise _bad("metadata.user_id", "expected a string")
        if user:
            out["user"] = user
    return out


# --------------------------------------------------------------------------- messages


def _system(system: Any) -> list[JSON]:
    if system is None:
        return []
    if isinstance(system, str):
        text = system
    elif isinstance(system, list):
        texts = [_text_of(block, f"system[{i}]") for i, block in enumerate(system)]
        text = "\n\n".join(t for t in texts if t)
    else:
        raise _bad("system", "expected a string or a list of text blocks")
    return [{"role": "system", "content": text}] if text else []


def _text_of(block: Any, where: str) -> str:
    if not isinstance(block, dict) or block.get("type") != "text":
        raise _bad(f"{where}.type", "expected text")
    text = block.get("text")
    if not isinstance(text, str):
        raise _bad(f"{where}.text", "expected a string")
    return text


def _message(msg: Any, where: str) -> list[JSON]:
    if not isinstance(msg, dict):
        raise _bad(where, "expected an object with role and content")
    role = msg.get("role")
    if role not in ("user", "assistant"):
        raise _bad(f"{where}.role", "expected user or assistant")
    content = msg.get("content")
    if isinstance(content, str):
        return [{"role": role, "content": content}]
    if not isinstance(content, list) or not content:
        raise _bad(f"{where}.content", "expected a string or a non-empty list of content blocks")
    if role == "assistant":
        return [_assistant(content, f"{where}.content")]
    return _user(content, f"{where}.content")


def _kind(block: Any, where: str, allowed: tuple[str, ...]) -> str:
    kind = block.get("type") if isinstance(block, dict) else None
    kind = kind if isinstance(kind, str) else None  # a dict is not hashable
    if kind in allowed or kind in _DROPPED_BLOCKS:
        return str(kind)
    names = f"{', '.join(allowed[:-1])} or {allowed[-1]}"
    raise _bad(f"{where}.type", f"expected {names}")


def _assistant(blocks: list[Any], where: str) -> JSON:
    parts: list[JSON] = []
    calls: list[JSON] = []
    for i, block in enumerate(blocks):
        at = f"{where}[{i}]"
        kind = _kind(block, at, ("text", "tool_use"))
        if kind == "text":
            parts.append({"type": "text", "text": _text_of(block, at)})
        elif kind == "tool_use":
            calls.append(_tool_call(block, at))
    out: JSON = {"role": "assistant", "content": _content(parts)}
    if calls:
        out["tool_calls"] = calls
    elif out["content"] is None:
        out["content"] = ""
    return out


def _tool_call(block: JSON, where: str) -> JSON:
    call_id, name = block.get("id"), block.get("name")
    if not isinstance(call_id, str) or not call_id:
        raise _bad(f"{where}.id", "expected a non-empty string")
    if not isinstance(name, str) or not name:
        raise _bad(f"{where}.name", "expected a non-empty string")
    args = block.get("input", {})
    if not isinstance(args, dict):
        raise _bad(f"{where}.input", "expected an object")
    arguments = dumps_body(args).decode()  # integers of any size stay exact
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


def _user(blocks: list[Any], where: str) -> list[JSON]:
    tools: list[JSON] = []
    parts: list[JSON] = []
    for i, block in enumerate(blocks):
        at = f"{where}[{i}]"
        kind = _kind(block, at, ("text", "image", "tool_result"))
        if kind == "text":
            parts.append({"type": "text", "text": _text_of(block, at)})
        elif kind == "image":
            parts.append(image_url(block, at))
        elif kind == "tool_result":
            message, images = _tool_result(block, at)
            tools.append(message)
            parts.extend(images)
    if not parts:
        return tools
    return [*tools, {"role": "user", "content": _content(parts)}]


def _tool_result(block: JSON, where: str) -> tuple[JSON, list[JSON]]:
    call_id = block.get("tool_use_id")
    if not isinstance(call_id, str) or not call_id:
        raise _bad(f"{where}.tool_use_id", "expected a non-empty string")
    content = block.get("content", "")
    texts: list[str] = []
    images: list[JSON] = []
    if isinstance(content, str):
        texts.append(content)
    elif isinstance(content, list):
        for i, inner in enumerate(content):
            at = f"{where}.content[{i}]"
            if _kind(inner, at, ("text", "image")) == "text":
                texts.append(_text_of(inner, at))
            else:
                images.append(image_url(inner, at))
    else:
        raise _bad(f"{where}.content", "expected a string or a list of text and image blocks")
    body = "\n".join(texts)  # OpenAI tool messages are text: blocks join by newlines
    if block.get("is_error") is True:
        body = TOOL_ERROR_PREFIX + body
    return {"role": "tool", "tool_call_id": call_id, "content": body}, images


def _content(parts: list[JSON]) -> str | list[JSON] | None:
    """One text part -> its string; no parts -> None; else the parts."""
    if not parts:
        return None
    if len(parts) == 1 and parts[0]["type"] == "text":
        text: str = parts[0]["text"]
        return text
    return parts


# --------------------------------------------------------------------------- tools


def _tools(body: JSON) -> JSON:
    out: JSON = {}
    tools = body.get("tools")
    if tools is not None:
        if not isinstance(tools, list):
            raise _bad("tools", "expected a list")
        if tools:
            out["tools"] = [_tool(t, f"tools[{i}]") for i, t in enumerate(tools)]
    choice = body.get("tool_choice")
    if choice is not None:
        out.update(_tool_choice(choice))
    return out


def _tool(tool: Any, where: str) -> JSON:
    if not isinstance(tool, dict):
        raise _bad(where, "expected an object")
    if tool.get("type", "custom") != "custom":
        raise _bad(f"{where}.type", "expected custom (server tools are not supported)")
    name, description = tool.get("name"), tool.get("description")
    if not isinstance(name, str) or not name:
        raise _bad(f"{where}.name", "expected a non-empty string")
    schema = tool.get("input_schema")
    if not isinstance(schema, dict):
        raise _bad(f"{where}.input_schema", "expected a JSON schema object")
    fn: JSON = {"name": name}
    if description is not None:
        if not isinstance(description, str):
            raise _bad(f"{where}.description", "expected a string")
        fn["description"] = description
    fn["parameters"] = schema
    return {"type": "function", "function": fn}


def _tool_choice(choice: Any) -> JSON:
    kind = choice.get("type") if isinstance(choice, dict) else None
    kind = kind if isinstance(kind, str) else None  # a dict is not hashable
    out: JSON = {}
    if kind in OPENAI_TOOL_CHOICES:
        out["tool_choice"] = OPENAI_TOOL_CHOICES[kind]
    elif kind == "tool":
        name = choice.get("name")
        if not isinstance(name, str) or not name:
            raise _bad("tool_choice.name", "expected a non-empty string")
        out["tool_choice"] = {"type": "function", "function": {"name": name}}
    else:
        raise _bad("tool_choice.type", "expected auto, any, tool or none")
    if choice.get("disable_parallel_tool_use") is True:
        out["parallel_tool_calls"] = False
    return out
