"""The OpenAI Responses API (``POST /v1/responses``) as a codec over chat-shaped bodies.

::

    Responses body ──decode_request──▶ chat body ──engine──▶ chat.completion
                                                              │
    Response object ◀──encode_response──────────────────────────┘
    stream events   ◀──StreamEncoder.feed/finish── chat.completion.chunk...

``decode_request`` turns ``instructions``, ``input`` (text or items), function tools,
``tool_choice``, ``text.format`` and the sampling fields into an OpenAI chat body
(``polyroute.types.Request`` with endpoint ``chat``); ``history`` (the chat messages of
earlier turns, from :mod:`polyroute.codecs.conversations`) goes between the
instructions and the new input, as the API does: instructions are never carried over
from a previous response.  Built-in tools and server-side features polyroute cannot
serve are refused with an ``InvalidRequest`` whose ``param`` is the field path.

``encode_response`` and :class:`StreamEncoder` build the Response object and its typed
stream events; both produce the same output items, with ids derived from the response
id (``msg_<hex>_<output index>``, ``fc_<hex>_<output index>``).
"""

from __future__ import annotations

import copy
import secrets
from dataclasses import dataclass
from typing import Any

from polyroute.errors import FieldError
from polyroute.jsonio import dumps_body
from polyroute.types import JSON

_ROLES = {"user": "user", "assistant": "assistant", "system": "system", "developer": "system"}
_TEXT_PARTS = frozenset({"input_text", "output_text", "text"})
_CHOICES = frozenset({"none", "auto", "required"})
_FORMATS = frozenset({"text", "json_object", "json_schema"})
# Responses fields polyroute cannot honour: refused when set (to a truthy value)
_UNSERVABLE = ("background", "conversation", "prompt")
# fields copied to the chat body as they are, with the JSON type each must have
_COPIED: dict[str, type | tuple[type, ...]] = {
    "temperature": (int, float),
    "top_p": (int, float),
    "user": str,
    "metadata": dict,
    "parallel_tool_calls": bool,
    "service_tier": str,
    "safety_identifier": str,
    "prompt_cache_key": str,
}
# request fields a Response echoes, with the value it shows when the request left them out
_ECHO: JSON = {
    "instructions": None,
    "max_output_tokens": None,
    "metadata": {},
    "parallel_tool_calls": True,
    "previous_response_id": None,
    "service_tier": None,
    "store": True,
    "temperature": 1.0,
    "text": {"format": {"type": "text"}},
    "tool_choice": "auto",
    "top_logprobs": None,
    "top_p": 1.0,
    "user": None,
}
_TOOL_KEYS = ("type", "name", "description", "parameters", "strict")
_INCOMPLETE = {"length": "max_output_tokens", "content_filter": "content_filter"}


def new_response_id() -> str:
    """A fresh response id: ``resp_`` and 32 hex digits."""
    return "resp_" + secrets.token_hex(16)


# --------------------------------------------------------------------------- decode


def _typed(value: Any, kind: type | tuple[type, ...], param: str, what: str) -> Any:
    if isinstance(value, bool) and kind in (int, (int, float)):
        raise FieldError(param, f"expected {what}, got a boolean")
    if not isinstance(value, kind):
        raise FieldError(param, f"expected {what}, got {type(value).__name__}")
    return value


def _text_of(parts: list[Any], param: str, kinds: frozenset[str] = _TEXT_PARTS) -> str:
    texts = []
    for i, part in enumerate(parts):
        p = f"{param}[{i}]"
        _typed(part, dict, p, "an object")
        if part.get("type") == "refusal":
            texts.append(_typed(part.get("refusal"), str, f"{p}.refusal", "a string"))
            continue
        if not isinstance(part.get("type"), str) or part.get("type") not in kinds:
            raise FieldError(f"{p}.type", f"unsupported content part {part.get('type')!r} here")
        texts.append(_typed(part.get("text"), str, f"{p}.text", "a string"))
    return "".join(texts)


def _user_part(part: Any, p: str) -> JSON:
    _typed(part, dict, p, "an object")
    kind = part.get("type")
    kind = kind if isinstance(kind, str) else None  # a dict is not hashable
    if kind in _TEXT_PARTS:
        return {"type": "text", "text": _typed(part.get("text"), str, f"{p}.text", "a string")}
    if kind == "input_image":
        url = part.get("image_url")
        if not isinstance(url, str):
            msg = "expected an image URL or data URL (file_id is not supported)"
            raise FieldError(f"{p}.image_url", msg)
        image: JSON = {"url": url}
        if part.get("detail") is not None:
            image["detail"] = _typed(part["detail"], str, f"{p}.detail", "a string")
        return {"type": "image_url", "image_url": image}
    if kind == "input_file":
        data = part.get("file_data")
        if not isinstance(data, str):
            msg = "expected inline file data (file_id and file_url are not supported)"
            raise FieldError(f"{p}.file_data", msg)
        file: JSON = {"file_data": data}
        if isinstance(part.get("filename"), str):
            file["filename"] = part["filename"]
        return {"type": "file", "file": file}
    raise FieldError(f"{p}.type", f"unsupported content part type {kind!r}")


def _message(item: JSON, p: str) -> JSON:
    role = item.get("role")
    if not isinstance(role, str) or role not in _ROLES:
        raise FieldError(f"{p}.role", "expected one of user, assistant, system, developer")
    content = item.get("content")
    if isinstance(content, str):
        return {"role": _ROLES[role], "content": content}
    parts: list[Any] = _typed(content, list, f"{p}.content", "a string or a list of parts")
    if role != "user":  # assistant, system and developer messages take text only
        return {"role": _ROLES[role], "content": _text_of(parts, f"{p}.content")}
    parts = [_user_part(part, f"{p}.content[{i}]") for i, part in enumerate(parts)]
    return {"role": "user", "content": parts}


def _tool_call(item: JSON, p: str) -> JSON:
    fields = {
        k: _typed(item.get(k), str, f"{p}.{k}", "a string")
        for k in ("call_id", "name", "arguments")
    }
    return {
        "id": fields["call_id"],
        "type": "function",
        "function": {"name": fields["name"], "arguments": fields["arguments"]},
    }


def _tool_output(item: JSON, p: str) -> JSON:
    call_id = _typed(item.get("call_id"), str, f"{p}.call_id", "a string")
    output = item.get("output")
    if not isinstance(output, str):
        parts = _typed(output, list, f"{p}.output", "a string or a list of content parts")
        output = _text_of(parts, f"{p}.output")
    return {"role": "tool", "tool_call_id": call_id, "content": output}


def items_to_messages(items: list[Any], where: str = "input") -> list[JSON]:
    """Responses items (input items, or a Response's ``output``) as chat messages.

    ``function_call`` items join the assistant message before them (or start one);
    ``function_call_output`` items become ``tool`` messages; ``reasoning`` items carry
    nothing chat can send and are skipped; any other item type is refused."""
    out: list[JSON] = []
    for i, item in enumerate(items):
        p = f"{where}[{i}]"
        _typed(item, dict, p, "an object")
        kind = item.get("type", "message")
        if kind == "message":
            out.append(_message(item, p))
        elif kind == "function_call":
            call = _tool_call(item, p)
            if out and out[-1]["role"] == "assistant":
                out[-1].setdefault("tool_calls", []).append(call)
            else:
                out.append({"role": "assistant", "content": None, "tool_calls": [call]})
        elif kind == "function_call_output":
            out.append(_tool_output(item, p))
        elif kind != "reasoning":
            msg = f"item type {kind!r} is not supported (message, function_call[_output])"
            raise FieldError(f"{p}.type", msg)
    return out


def input_messages(body: JSON) -> list[JSON]:
    """The new turn of a Responses body (its ``input``) as chat messages."""
    value = body.get("input")
    if isinstance(value, str):
        return [{"role": "user", "content": value}]
    return items_to_messages(_typed(value, list, "input", "a string or a list of items"))


def _tools(value: Any) -> list[JSON]:
    _typed(value, list, "tools", "a list")
    out = []
    for i, tool in enumerate(value):
        _typed(tool, dict, f"tools[{i}]", "an object")
        kind = tool.get("type")
        if kind != "function":
            msg = f"built-in tool {kind!r} cannot be served by polyroute (function tools only)"
            raise FieldError(f"tools[{i}].type", msg)
        fn: JSON = {"name": _typed(tool.get("name"), str, f"tools[{i}].name", "a string")}
        for key, kind_ in (("description", str), ("parameters", dict), ("strict", bool)):
            if tool.get(key) is not None:
                fn[key] = _typed(tool[key], kind_, f"tools[{i}].{key}", kind_.__name__)
        out.append({"type": "function", "function": fn})
    return out


def _tool_choice(value: Any) -> Any:
    if isinstance(value, str) and value in _CHOICES:
        return value
    _typed(value, dict, "tool_choice", "none, auto, required or a function choice")
    if value.get("type") == "function":
        name = _typed(value.get("name"), str, "tool_choice.name", "a function name")
        return {"type": "function", "function": {"name": name}}
    if value.get("type") == "allowed_tools":
        tools = _typed(value.get("tools"), list, "tool_choice.tools", "a list")
        chosen = []
        for i, tool in enumerate(tools):
            name = tool.get("name") if isinstance(tool, dict) else None
            name = _typed(name, str, f"tool_choice.tools[{i}].name", "a function name")
            chosen.append({"type": "function", "function": {"name": name}})
        allowed = {"mode": value.get("mode", "auto"), "tools": chosen}
        return {"type": "allowed_tools", "allowed_tools": allowed}
    kind = value.get("type")
    raise FieldError("tool_choice.type", f"{kind!r} cannot be served (function tools only)")


def _response_format(text: Any) -> JSON | None:
    _typed(text, dict, "text", "an object")
    fmt = text.get("format")
    if fmt is None:
        return None
    _typed(fmt, dict, "text.format", "an object")
    kind = fmt.get("type")
    if not isinstance(kind, str) or kind not in _FORMATS:
        raise FieldError("text.format.type", "expected text, json_object or json_schema")
    if kind != "json_schema":
        return {"type": kind}
    schema: JSON = {
        "name": _typed(fmt.get("name"), str, "text.format.name", "a string"),
        "schema": _typed(fmt.get("schema"), dict, "text.format.schema", "an object"),
    }
    for key, kind_ in (("description", str), ("strict", bool)):
        if fmt.get(key) is not None:
            schema[key] = _typed(fmt[key], kind_, f"text.format.{key}", kind_.__name__)
    return {"type": "json_schema", "json_schema": schema}


def _sampling(body: JSON, chat: JSON) -> None:
    for key, kind in _COPIED.items():
        if body.get(key) is not None:
            chat[key] = _typed(body[key], kind, key, f"a {key} of the right type")
    if body.get("max_output_tokens") is not None:
        limit = _typed(body["max_output_tokens"], int, "max_output_tokens", "an integer")
        chat["max_tokens"] = limit
    if body.get("top_logprobs") is not None:
        chat["logprobs"] = True
        chat["top_logprobs"] = _typed(body["top_logprobs"], int, "top_logprobs", "an integer")
    reasoning = body.get("reasoning")
    if isinstance(reasoning, dict) and reasoning.get("effort") is not None:
        chat["reasoning_effort"] = reasoning["effort"]
    if body.get("stream") is not None and _typed(body["stream"], bool, "stream", "a boolean"):
        chat["stream"] = True
        chat["stream_options"] = {"include_usage": True}  # the final event reports usage


def _check_fields(body: JSON) -> None:
    for key in _UNSERVABLE:
        if body.get(key):
            raise FieldError(key, "is not supported by polyroute")
    checked = {"model": str, "instructions": str, "previous_response_id": str, "store": bool}
    for key, kind in checked.items():
        if body.get(key) is not None:
            _typed(body[key], kind, key, kind.__name__)


def decode_request(body: JSON, history: list[JSON] | None = None) -> JSON:
    """A Responses request body as an OpenAI chat body.

    ``history`` is the chat messages of the earlier turns (``previous_response_id``
    resolved by the caller); ``store`` and ``previous_response_id`` are read by the
    caller and not forwarded.  Raises :class:`FieldError` (an ``InvalidRequest``)
    naming the field path of anything malformed or unservable."""
    _check_fields(body)
    messages: list[JSON] = []
    if body.get("instructions"):
        messages.append({"role": "system", "content": body["instructions"]})
    messages.extend(history or [])
    messages.extend(input_messages(body))
    chat: JSON = {"model": body.get("model") or "auto", "messages": messages}
    if body.get("tools"):
        chat["tools"] = _tools(body["tools"])
    if body.get("tool_choice") is not None:
        chat["tool_choice"] = _tool_choice(body["tool_choice"])
    if body.get("text") is not None:
        fmt = _response_format(body["text"])
        if fmt is not None:
            chat["response_format"] = fmt
        if body["text"].get("verbosity") is not None:
            chat["verbosity"] = body["text"]["verbosity"]
    _sampling(body, chat)
    return chat


# --------------------------------------------------------------------------- encode


def _item_id(prefix: str, response_id: str, index: int) -> str:
    return f"{prefix}_{response_id.removeprefix('resp_')}_{index}"


def _text_part(text: str) -> JSON:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def _message_item(item_id: str, text: str, status: str) -> JSON:
    content = [_text_part(text)] if status != "in_progress" else []
    return dict(id=item_id, type="message", role="assistant", status=status, content=content)


def _call_item(item_id: str, call_id: str, name: str, arguments: str, status: str) -> JSON:
    return dict(
        id=item_id,
        type="function_call",
        call_id=call_id,
        name=name,
        arguments=arguments,
        status=status,
    )


def _count(obj: Any, key: str) -> int:
    """A token count from an upstream's usage (0 when absent or not a count)."""
    value = obj.get(key) if isinstance(obj, dict) else None
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


def _usage(usage: Any) -> JSON | None:
    if not isinstance(usage, dict):
        return None
    prompt, completion = _count(usage, "prompt_tokens"), _count(usage, "completion_tokens")
    return {
        "input_tokens": prompt,
        "input_tokens_details": {
            "cached_tokens": _count(usage.get("prompt_tokens_details"), "cached_tokens"),
            "cache_write_tokens": 0,
        },
        "output_tokens": completion,
        "output_tokens_details": {
            "reasoning_tokens": _count(usage.get("completion_tokens_details"), "reasoning_tokens")
        },
        "total_tokens": _count(usage, "total_tokens") or prompt + completion,
    }


@dataclass(slots=True)
class _Outcome:
    """What the upstream answered, in the terms of a Response object."""

    model: str
    output: list[JSON]
    finish_reason: str | None
    usage: JSON | None


def _envelope(
    body: JSON, response_id: str, created_at: int, outcome: _Outcome, status: str | None = None
) -> JSON:
    """The Response object around ``outcome``: status from its ``finish_reason``
    (``length`` and ``content_filter`` make it ``incomplete``) unless ``status`` is
    given, and the request's settings echoed as the API does."""
    model, output, usage = outcome.model, outcome.output, outcome.usage
    reason = _INCOMPLETE.get(outcome.finish_reason or "")
    if status is None:
        status = "incomplete" if reason else "completed"
    echo = {k: copy.deepcopy(d) if body.get(k) is None else body[k] for k, d in _ECHO.items()}
    tools = [{k: t.get(k) for k in _TOOL_KEYS} for t in body.get("tools") or []]
    return {
        **echo,
        "id": response_id,
        "object": "response",
        "created_at": created_at,
        "status": status,
        "completed_at": created_at if status == "completed" else None,
        "error": None,
        "incomplete_details": {"reason": reason} if status == "incomplete" else None,
        "model": model,
        "output": output,
        "reasoning": {"effort": (body.get("reasoning") or {}).get("effort"), "summary": None},
        "tools": tools,
        "truncation": "disabled",
        "usage": usage,
    }


def encode_response(answer: JSON, request_body: JSON, response_id: str, created_at: int) -> JSON:
    """A ``chat.completion`` as the Response object of ``request_body``: one assistant
    message item (``output_text``) when the answer has text or no tool calls, then one
    ``function_call`` item per tool call."""
    choices = answer.get("choices") or [{}]
    choice = choices[0] if isinstance(choices[0], dict) else {}
    message = choice.get("message") or {}
    finish = choice.get("finish_reason")
    status = "incomplete" if finish in _INCOMPLETE else "completed"
    calls = [c for c in message.get("tool_calls") or [] if isinstance(c, dict)]
    text = message.get("content")
    if not isinstance(text, str) or not text:
        refusal = message.get("refusal")
        text = refusal if isinstance(refusal, str) else ""
    output: list[JSON] = []
    if text or not calls:
        output.append(_message_item(_item_id("msg", response_id, 0), text, status))
    for call in calls:
        fn = call.get("function") or {}
        item_id = _item_id("fc", response_id, len(output))
        name, arguments = str(fn.get("name", "")), str(fn.get("arguments", ""))
        output.append(_call_item(item_id, str(call.get("id")), name, arguments, status))
    model = str(answer.get("model") or request_body.get("model") or "auto")
    usage = _usage(answer.get("usage"))
    outcome = _Outcome(model, output, finish, usage)
    return _envelope(request_body, response_id, created_at, outcome)


def response_messages(response: JSON) -> list[JSON]:
    """A Response object's ``output`` as chat messages (what a stored conversation keeps)."""
    return items_to_messages(response.get("output") or [], "output")


def conversation_after(body: JSON, history: list[JSON], response: JSON) -> list[JSON]:
    """The chat messages of the conversation after this turn: the earlier turns, the new
    input and the answer (instructions excluded: they are not carried over)."""
    return [*history, *input_messages(body), *response_messages(response)]


# --------------------------------------------------------------------------- stream


def sse(event: JSON) -> bytes:
    """One stream event as a server-sent event: ``event: TYPE`` and its JSON data."""
    return b"event: " + str(event["type"]).encode() + b"\ndata: " + dumps_body(event) + b"\n\n"


class StreamEncoder:
    """Turns ``chat.completion.chunk`` objects into Responses stream events.

    ``feed`` each chunk and send the events it returns; ``finish`` after the last
    chunk (it closes the open item and emits ``response.completed``, or
    ``response.incomplete`` when the answer was cut).  ``response`` then holds the full
    Response object, for the conversation store.  Each event carries the next
    ``sequence_number``; one output item is open at a time."""

    def __init__(self, request_body: JSON, response_id: str, created_at: int) -> None:
        self._body, self._id, self._created = request_body, response_id, created_at
        self._seq = 0
        self._started = False
        self._items: list[JSON] = []
        self._open: JSON | None = None  # the item being streamed
        self._call_index: int | None = None  # its chat tool-call index, for function calls
        self._model = str(request_body.get("model") or "auto")
        self._finish: str | None = None
        self._usage: JSON | None = None
        self.response: JSON | None = None

    sse = staticmethod(sse)

    def _event(self, kind: str, **fields: Any) -> JSON:
        event = {"type": f"response.{kind}", "sequence_number": self._seq, **fields}
        self._seq += 1
        return event

    def _at(self, kind: str, **fields: Any) -> JSON:
        """An event about the open item (its id and output index)."""
        assert self._open is not None
        return self._event(kind, item_id=self._open["id"], output_index=len(self._items), **fields)

    def _envelope(self, status: str | None = None) -> JSON:
        outcome = _Outcome(self._model, list(self._items), self._finish, self._usage)
        return _envelope(self._body, self._id, self._created, outcome, status)

    def _start(self) -> list[JSON]:
        self._started = True
        shell = self._envelope("in_progress")
        return [self._event("created", response=shell), self._event("in_progress", response=shell)]

    def feed(self, chunk: JSON) -> list[JSON]:
        events = [] if self._started else self._start()
        if isinstance(chunk.get("model"), str):
            self._model = chunk["model"]
        if isinstance(chunk.get("usage"), dict):
            self._usage = _usage(chunk["usage"])
        for choice in chunk.get("choices") or []:
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta") or {}
            for key in ("content", "refusal"):
                if isinstance(delta.get(key), str) and delta[key]:
                    events += self._text(delta[key])
            for call in delta.get("tool_calls") or []:
                events += self._tool(call)
            if choice.get("finish_reason"):
                self._finish = choice["finish_reason"]
        return events

    def _text(self, delta: str) -> list[JSON]:
        events = self._close() if self._open and self._open["type"] != "message" else []
        if self._open is None:
            item_id = _item_id("msg", self._id, len(self._items))
            self._open = {**_message_item(item_id, "", "in_progress"), "_text": ""}
            item = _message_item(item_id, "", "in_progress")
            events.append(
                self._event("output_item.added", output_index=len(self._items), item=item)
            )
            events.append(self._at("content_part.added", content_index=0, part=_text_part("")))
        self._open["_text"] += delta
        events.append(self._at("output_text.delta", content_index=0, delta=delta, logprobs=[]))
        return events

    def _tool(self, call: Any) -> list[JSON]:
        if not isinstance(call, dict):
            return []
        index, fn = call.get("index", 0), call.get("function") or {}
        events: list[JSON] = []
        if self._open is not None and (
            self._open["type"] != "function_call" or self._call_index != index
        ):
            events += self._close()
        if self._open is None:
            position = len(self._items)
            call_id = str(call.get("id") or _item_id("call", self._id, position))
            name = str(fn.get("name") or "")
            self._open = _call_item(
                _item_id("fc", self._id, position), call_id, name, "", "in_progress"
            )
            self._call_index = index
            events.append(
                self._event("output_item.added", output_index=position, item=dict(self._open))
            )
        elif fn.get("name"):
            self._open["name"] += str(fn["name"])
        arguments = fn.get("arguments")
        if isinstance(arguments, str) and arguments:
            self._open["arguments"] += arguments
            events.append(self._at("function_call_arguments.delta", delta=arguments))
        return events

    def _close(self) -> list[JSON]:
        item = self._open
        assert item is not None
        status = "incomplete" if self._finish in _INCOMPLETE else "completed"
        if item["type"] == "message":
            text = item["_text"]
            done = _message_item(item["id"], text, status)
            events = [
                self._at("output_text.done", content_index=0, text=text, logprobs=[]),
                self._at("content_part.done", content_index=0, part=_text_part(text)),
            ]
        else:
            done = {**item, "status": status}
            events = [self._at("function_call_arguments.done", arguments=item["arguments"])]
        events.append(self._event("output_item.done", output_index=len(self._items), item=done))
        self._items.append(done)
        self._open, self._call_index = None, None
        return events

    def finish(self) -> list[JSON]:
        """Close the open item and emit ``response.completed`` (``response.incomplete``
        when the answer was cut); sets ``response``."""
        events = [] if self._started else self._start()
        if self._open is not None:
            events += self._close()
        self.response = self._envelope()
        kind = "incomplete" if self.response["status"] == "incomplete" else "completed"
        events.append(self._event(kind, response=self.response))
        return events

    def fail(self, message: str) -> list[JSON]:
        """End a stream the upstream broke: ``response.failed`` with ``message`` (the
        items already sent stay in ``output``; the open one is dropped)."""
        events = [] if self._started else self._start()
        self._open = None
        self.response = self._envelope("failed")
        self.response["error"] = {"code": "server_error", "message": message}
        events.append(self._event("failed", response=self.response))
        return events
