"""Shared request/response builders for the Anthropic provider tests."""

from __future__ import annotations

from typing import Any

from polyroute.types import JSON, Request


def chat(messages: list[JSON], **fields: Any) -> Request:
    return Request({"model": "auto", "messages": messages, **fields})


WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "weather",
        "description": "Current weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}


def message(content: list[JSON], stop_reason: str = "end_turn", **usage: int) -> JSON:
    return {
        "id": "msg_01",
        "type": "message",
        "role": "assistant",
        "model": "claude-test",
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": {"input_tokens": 10, "output_tokens": 5, **usage},
    }
