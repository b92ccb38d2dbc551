"""``POST /v1/messages`` through the gateway app: what an OpenAI-compatible upstream
receives for Anthropic tool turns, and the answer's shape (the real SDK parses it)."""

from __future__ import annotations

from typing import Any

import pytest
from anthropic_helpers import sdk
from fakes import FakeUpstream

anthropic = pytest.importorskip("anthropic")

TOOL_TURNS: list[dict[str, Any]] = [
    {"role": "user", "content": "What is the weather in Paris?"},
    {
        "role": "assistant",
        "content": [
            {"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"city": "Paris"}}
        ],
    },
    {
        "role": "user",
        "content": [{"type": "tool_result", "tool_use_id": "call_1", "content": "18 C, sunny"}],
    },
]
TOOLS = [
    {
        "name": "get_weather",
        "description": "The weather in a city.",
        "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
    }
]


def test_tool_turns_reach_an_openai_upstream_as_tool_calls_and_tool_messages(
    make_client: Any, upstreams: tuple[FakeUpstream, ...]
) -> None:
    claude = sdk(make_client())
    raw = claude.messages.with_raw_response.create(
        model="auto", max_tokens=32, system="Be brief.", tools=TOOLS, messages=TOOL_TURNS
    )
    message = raw.parse()
    sent = upstreams[0].requests[-1]
    assert sent["messages"][0] == {"role": "system", "content": "Be brief."}
    call = sent["messages"][2]["tool_calls"][0]
    assert call["id"] == "call_1" and call["function"]["name"] == "get_weather"
    assert sent["messages"][3] == {
        "role": "tool",
        "tool_call_id": "call_1",
        "content": "18 C, sunny",
    }
    assert sent["tools"][0]["function"]["name"] == "get_weather"
    assert sent["max_tokens"] == 32
    assert raw.headers["x-polyroute-model"] == "small"
    assert message.content[0].text == "hello from fake (small)"
    assert message.usage.input_tokens == 3 and message.usage.output_tokens == 4


def test_a_stream_is_anthropic_events_and_an_error_is_anthropic_shaped(
    make_client: Any, upstreams: tuple[FakeUpstream, ...]
) -> None:
    claude = sdk(make_client())
    with claude.messages.stream(
        model="auto", max_tokens=32, messages=[{"role": "user", "content": "hi"}]
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == "tok0 tok1 tok2 " == final.content[0].text
    assert final.usage.output_tokens == 3  # from the upstream's usage chunk
    with pytest.raises(anthropic.BadRequestError) as info:
        claude.messages.create(model="auto", max_tokens=8, messages=[])
    assert info.value.body["error"]["type"] == "invalid_request_error"
    assert "messages" in info.value.body["error"]["message"]
