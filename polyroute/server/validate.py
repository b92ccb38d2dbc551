"""Cheap structural checks of request bodies (the hot path: no pydantic model per request)."""

from __future__ import annotations

from typing import Any

import orjson

from polyroute.errors import InvalidRequest, PayloadTooLarge
from polyroute.types import JSON, Endpoint


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
    return body


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
