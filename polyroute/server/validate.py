"""Cheap structural checks of request bodies (the hot path: no pydantic model per request)."""

from __future__ import annotations

import json
from typing import Any, NoReturn

import orjson

from polyroute.errors import InvalidRequest, PayloadTooLarge
from polyroute.types import JSON, Endpoint

# orjson parses up to 1024 levels of arrays/objects but serializes at most 254, and the
# gateway re-serializes every body it forwards: deeper bodies would fail there (a 500).
# Real requests (tool schemas included) stay far below this.
MAX_DEPTH = 128
# orjson reads an integer beyond 64 bits as a float (123456789012345678901 becomes
# 1.2345678901234568e+20), the stdlib keeps it exact: a body with a run of 19 or more
# digits (anywhere, strings too) is parsed again.  The run is found by mapping every digit
# to "0" (one C pass, about the cost of one ``bytes.count``; a regex for ``[0-9]{19}``
# measured 10 to 50 times slower than parsing the body).
_DIGITS_AS_ZEROS = bytes.maketrans(b"123456789", b"000000000")
_LONG_DIGIT_RUN = b"0" * 19
MAX_MODEL_CHARS = 256


class ParamError(InvalidRequest):
    def __init__(self, message: str, param: str) -> None:
        super().__init__(message)
        self.param = param


def parse_body(raw: bytes, limit: int) -> JSON:
    if len(raw) > limit:
        raise PayloadTooLarge(f"request body is {len(raw)} bytes; the limit is {limit}")
    if not raw:
        raise InvalidRequest("request body is empty; expected a JSON object")
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(
            f"request body is not valid JSON ({exc.msg} at position {exc.pos})"
        ) from None
    if not isinstance(body, dict):
        raise InvalidRequest(f"request body must be a JSON object, got {type(body).__name__}")
    # the depth is at most the number of brackets: count them (fast, in C) before walking
    if raw.count(b"[") + raw.count(b"{") > MAX_DEPTH and _too_deep(body):
        raise InvalidRequest(
            f"request body is nested too deeply (more than {MAX_DEPTH} levels of arrays/objects)"
        )
    if _LONG_DIGIT_RUN in raw.translate(_DIGITS_AS_ZEROS):
        return _parse_exact(raw)  # same structure: its depth is checked above
    return body


def _parse_exact(raw: bytes) -> JSON:
    """``raw`` through the stdlib, which keeps integers of any size exact.  orjson accepted
    it first: valid UTF-8, no ``NaN``/``Infinity`` literal, every number finite."""
    try:
        body: JSON = json.loads(raw, parse_constant=_no_constant)
    except (ValueError, RecursionError) as exc:  # e.g. an integer of more than 4300 digits
        raise InvalidRequest(f"request body is not valid JSON ({exc})") from None
    return body


def _no_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not a JSON value")


def _too_deep(value: Any) -> bool:
    """True when ``value`` nests more than ``MAX_DEPTH`` arrays/objects (iterative walk)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            return True
        children = node.values() if isinstance(node, dict) else node
        stack.extend((c, depth + 1) for c in children if isinstance(c, dict | list))
    return False


def _check_message(i: int, m: Any) -> None:
    if not isinstance(m, dict):
        raise ParamError(f"messages[{i}] must be an object", f"messages[{i}]")
    if not isinstance(m.get("role"), str):
        raise ParamError(f"messages[{i}].role must be a string", f"messages[{i}].role")
    content = m.get("content")
    if content is not None and not isinstance(content, str | list):
        raise ParamError(
            f"messages[{i}].content must be a string, a list of parts or null",
            f"messages[{i}].content",
        )


def check_body(body: JSON, endpoint: Endpoint) -> None:
    model = body.get("model", "auto")
    if not isinstance(model, str) or not model:
        raise ParamError("'model' must be a non-empty string", "model")
    if len(model) > MAX_MODEL_CHARS:  # never echoed back whole (errors, logs)
        raise ParamError(
            f"'model' is {len(model)} characters long; model names have at most {MAX_MODEL_CHARS}",
            "model",
        )
    if "stream" in body and not isinstance(body["stream"], bool):
        raise ParamError("'stream' must be a boolean", "stream")
    if endpoint == "chat":
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise ParamError("'messages' must be a non-empty list", "messages")
        for i, m in enumerate(messages):
            _check_message(i, m)
    else:
        prompt = body.get("prompt")
        ok = isinstance(prompt, str) or (
            isinstance(prompt, list) and prompt and all(isinstance(p, str) for p in prompt)
        )
        if not ok:
            raise ParamError("'prompt' must be a string or a non-empty list of strings", "prompt")


def check_embeddings(body: JSON) -> None:
    """An embeddings body: ``model`` a name, ``input`` a string, or a non-empty list of
    strings, of token ids, or of lists of token ids (as OpenAI's API takes)."""
    model = body.get("model")
    if not isinstance(model, str) or not 0 < len(model) <= MAX_MODEL_CHARS:
        raise ParamError(f"'model' must be a string of 1 to {MAX_MODEL_CHARS} characters", "model")
    text = body.get("input")
    if isinstance(text, str):
        return
    ok = (
        isinstance(text, list)
        and bool(text)
        and (
            all(isinstance(t, str) for t in text)
            or all(_token(t) for t in text)
            or all(isinstance(t, list) and t and all(_token(x) for x in t) for t in text)
        )
    )
    if not ok:
        raise ParamError(
            "'input' must be a string, or a non-empty list of strings, of token ids or of "
            "lists of token ids",
            "input",
        )


def _token(value: Any) -> bool:
    """A token id: a non-negative integer (``5.0`` counts, as JSON Schema says)."""
    if isinstance(value, float):
        return value.is_integer() and value >= 0
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0
