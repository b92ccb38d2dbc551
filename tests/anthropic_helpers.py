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


def sdk(client: Any) -> Any:
    """The real anthropic SDK over an in-process app (a Starlette ``TestClient``)."""
    import anthropic
    import httpx2

    def send(request: httpx2.Request) -> httpx2.Response:
        r = client.request(
            request.method, request.url.path, content=request.content, headers=dict(request.headers)
        )
        return httpx2.Response(r.status_code, headers=r.headers, content=r.content)

    return anthropic.Anthropic(
        base_url="http://testserver",
        api_key="k",
        max_retries=0,
        http_client=httpx2.Client(transport=httpx2.MockTransport(send)),
    )
