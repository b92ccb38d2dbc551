"""The Anthropic Messages codec, requests: decoding, validation, and the chat -> Anthropic
-> chat round trip."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from polyroute.backends.anthropic_translate import to_anthropic
from polyroute.codecs.anthropic_messages import (
    decode_request,
)
from polyroute.codecs.anthropic_tables import FINISH_REASONS, STOP_REASONS
from polyroute.errors import InvalidRequest
from polyroute.types import JSON, Request

WEATHER = {
    "name": "weather",
    "description": "Current weather",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
}


def body(messages: list[JSON], **fields: Any) -> JSON:
    return {"model": "auto", "max_tokens": 100, "messages": messages, **fields}


# --------------------------------------------------------------------------- round trip

texts = st.text(min_size=1, max_size=20)
names = st.from_regex(r"[a-z][a-z0-9_]{0,11}", fullmatch=True)
arguments = st.dictionaries(
    names, st.integers(-(2**63), 2**63 - 1) | st.text(max_size=8) | st.booleans(), max_size=3
)


@st.composite
def tool_turn(draw: st.DrawFn, start: int) -> list[JSON]:
    """An assistant turn with tool calls, then one tool result per call."""
    count = draw(st.integers(1, 3))
    calls = [
        {
            "id": f"call_{start + i}",
            "type": "function",
            "function": {"name": draw(names), "arguments": orjson.dumps(draw(arguments)).decode()},
        }
        for i in range(count)
    ]
    content = draw(st.none() | texts)
    results = [{"role": "tool", "tool_call_id": c["id"], "content": draw(texts)} for c in calls]
    return [{"role": "assistant", "content": content, "tool_calls": calls}, *results]


@st.composite
def chat_bodies(draw: st.DrawFn) -> JSON:
    messages: list[JSON] = []
    if draw(st.booleans()):
        messages.append({"role": "system", "content": draw(texts)})
    turns = draw(st.integers(1, 4))
    for turn in range(turns):
        messages.append({"role": "user", "content": draw(texts)})
        tools = draw(st.booleans())
        if tools:
            messages.extend(draw(tool_turn(turn * 10)))
        # two user messages in a row would be one Anthropic turn: an assistant answers
        if draw(st.booleans()) or (not tools and turn < turns - 1):
            messages.append({"role": "assistant", "content": draw(texts)})
    out: JSON = {"model": "auto", "messages": messages}
    fields = {
        "max_tokens": st.integers(1, 8192),
        "temperature": st.floats(0, 1),
        "top_p": st.floats(0, 1),
        "stop": texts | st.lists(texts, min_size=1, max_size=4),
        "user": texts,
        "stream": st.booleans(),
    }
    for name, strategy in fields.items():
        if draw(st.booleans()):
            out[name] = draw(strategy)
    if draw(st.booleans()):
        tool_names = draw(st.lists(names, min_size=1, max_size=3, unique=True))
        out["tools"] = [
            {
                "type": "function",
                "function": {
                    "name": n,
                    "description": draw(texts),
                    "parameters": {"type": "object", "properties": {"x": {"type": "string"}}},
                },
            }
            for n in tool_names
        ]
        named = {"type": "function", "function": {"name": tool_names[0]}}
        choice = draw(st.sampled_from([None, "auto", "none", "required", named]))
        if choice is not None:
            out["tool_choice"] = choice
        if draw(st.booleans()):
            out["parallel_tool_calls"] = False
    return out


def comparable(chat: JSON) -> JSON:
    """What both formats express, in one canonical shape."""
    messages = []
    for m in chat["messages"]:
        calls = [
            (c["id"], c["function"]["name"], orjson.loads(c["function"]["arguments"]))
            for c in m.get("tool_calls") or []
        ]
        content = m.get("content") or None
        messages.append((m["role"], content, calls, m.get("tool_call_id")))
    stop = chat.get("stop")
    tools = [
        (t["function"]["name"], t["function"].get("description"), t["function"]["parameters"])
        for t in chat.get("tools", [])
    ]
    choice = chat.get("tool_choice", "auto") if tools else None
    parallel = chat.get("parallel_tool_calls", True) or choice == "none" or not tools
    return {
        "messages": messages,
        "max_tokens": chat.get("max_tokens", 1024),
        "temperature": chat.get("temperature"),
        "top_p": chat.get("top_p"),
        "stop": [stop] if isinstance(stop, str) else stop,
        "user": chat.get("user"),
        "stream": chat.get("stream", False),
        "tools": tools,
        "tool_choice": choice,
        "parallel": parallel,
    }


@settings(max_examples=150, deadline=None)
@given(chat=chat_bodies())
def test_a_chat_request_through_anthropic_and_back_keeps_every_shared_field(chat: JSON) -> None:
    wire = to_anthropic(Request(chat), "claude-x", stream=chat.get("stream", False))
    back = decode_request(wire)
    assert comparable(back) == comparable(chat)
    assert back["model"] == "claude-x"
    if chat.get("stream"):
        assert back["stream_options"] == {"include_usage": True}


def test_the_stop_reason_tables_are_inverse_to_each_other() -> None:
    for finish, reason in STOP_REASONS.items():
        expected = "tool_calls" if finish == "function_call" else finish
        assert FINISH_REASONS[reason] == expected


# --------------------------------------------------------------------------- decode_request


def test_system_blocks_become_one_system_message_and_unknown_fields_are_dropped() -> None:
    system = [{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}]
    system.append({"type": "text", "text": "Answer in French."})
    out = decode_request(
        body(
            [{"role": "user", "content": "Hi"}],
            system=system,
            top_k=5,
            thinking={"type": "enabled", "budget_tokens": 1024},
            metadata={"user_id": "alice"},
            stop_sequences=["END"],
            temperature=0.2,
        )
    )
    assert out == {
        "model": "auto",
        "messages": [
            {"role": "system", "content": "Be brief.\n\nAnswer in French."},
            {"role": "user", "content": "Hi"},
        ],
        "max_tokens": 100,
        "temperature": 0.2,
        "top_k": 5,
        "stop": ["END"],
        "user": "alice",
    }


def test_images_become_image_url_parts() -> None:
    blocks = [
        {"type": "text", "text": "What is this?"},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBO"}},
        {"type": "image", "source": {"type": "url", "url": "https://x.test/a.jpg"}},
    ]
    out = decode_request(body([{"role": "user", "content": blocks}]))
    assert out["messages"][0]["content"] == [
        {"type": "text", "text": "What is this?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBO"}},
        {"type": "image_url", "image_url": {"url": "https://x.test/a.jpg"}},
    ]


def test_tool_use_and_tool_results_become_tool_calls_and_tool_messages_first() -> None:
    messages = [
        {"role": "user", "content": "Weather in Paris and Rome?"},
        {
            "role": "assistant",
            "content": [
                {"type": "thinking", "thinking": "two calls", "signature": "sig"},
                {
                    "type": "tool_use",
                    "id": "toolu_1",
                    "name": "weather",
                    "input": {"city": "Paris"},
                },
                {"type": "tool_use", "id": "toolu_2", "name": "weather", "input": {"city": "Rome"}},
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Here you go"},
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": "18C"},
                {
                    "type": "tool_result",
                    "tool_use_id": "toolu_2",
                    "is_error": True,
                    "content": [{"type": "text", "text": "timeout"}],
                },
            ],
        },
    ]
    out = decode_request(
        body(
            messages,
            tools=[WEATHER],
            tool_choice={"type": "any", "disable_parallel_tool_use": True},
        )
    )
    assert out["messages"][1:] == [
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "toolu_1",
                    "type": "function",
                    "function": {"name": "weather", "arguments": '{"city":"Paris"}'},
                },
                {
                    "id": "toolu_2",
                    "type": "function",
                    "function": {"name": "weather", "arguments": '{"city":"Rome"}'},
                },
            ],
        },
        {"role": "tool", "tool_call_id": "toolu_1", "content": "18C"},
        {"role": "tool", "tool_call_id": "toolu_2", "content": "[tool error] timeout"},
        {"role": "user", "content": "Here you go"},
    ]
    assert out["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "weather",
                "description": "Current weather",
                "parameters": WEATHER["input_schema"],
            },
        }
    ]
    assert out["tool_choice"] == "required"
    assert out["parallel_tool_calls"] is False


def test_tool_input_keeps_integers_beyond_64_bits() -> None:
    block = {"type": "tool_use", "id": "t", "name": "f", "input": {"n": 2**70}}
    out = decode_request(body([{"role": "assistant", "content": [block]}]))
    assert out["messages"][0]["tool_calls"][0]["function"]["arguments"] == f'{{"n":{2**70}}}'


def test_an_image_in_a_tool_result_moves_to_the_user_message_after_it() -> None:
    image = {"type": "image", "source": {"type": "url", "url": "https://x.test/s.png"}}
    result = {"type": "tool_result", "tool_use_id": "t1", "content": [image]}
    out = decode_request(body([{"role": "user", "content": [result]}]))
    assert out["messages"] == [
        {"role": "tool", "tool_call_id": "t1", "content": ""},
        {
            "role": "user",
            "content": [{"type": "image_url", "image_url": {"url": image["source"]["url"]}}],
        },
    ]


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        ({"type": "auto"}, "auto"),
        ({"type": "none"}, "none"),
        ({"type": "any"}, "required"),
        (
            {"type": "tool", "name": "weather"},
            {"type": "function", "function": {"name": "weather"}},
        ),
    ],
)
def test_tool_choice_is_translated(choice: JSON, expected: Any) -> None:
    out = decode_request(
        body([{"role": "user", "content": "hi"}], tools=[WEATHER], tool_choice=choice)
    )
    assert out["tool_choice"] == expected
    assert "parallel_tool_calls" not in out


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"max_tokens": None}, "max_tokens: expected a positive integer (it is required)"),
        ({"max_tokens": 0}, "max_tokens: expected a positive integer"),
        ({"messages": []}, "messages: expected a non-empty list"),
        ({"system": 3}, "system: expected a string or a list of text blocks"),
        ({"temperature": "hot"}, "temperature: expected a number"),
        ({"stop_sequences": "END"}, "stop_sequences: expected a list of strings"),
        ({"tool_choice": {"type": "maybe"}}, "tool_choice.type: expected auto, any, tool or none"),
        ({"tools": [{"name": "x"}]}, "tools[0].input_schema: expected a JSON schema object"),
        (
            {"tools": [{"type": "web_search_20250305", "name": "web_search"}]},
            "tools[0].type: expected custom",
        ),
        (
            {"messages": [{"role": "user", "content": []}]},
            "messages[0].content: expected a string or a non-empty list of content blocks",
        ),
        (
            {"messages": [{"role": "system", "content": "x"}]},
            "messages[0].role: expected user or assistant",
        ),
        (
            {"messages": [{"role": "user", "content": [{"type": "document"}]}]},
            "messages[0].content[0].type: expected text, image or tool_result",
        ),
        (
            {"messages": [{"role": "assistant", "content": [{"type": "tool_result"}]}]},
            "messages[0].content[0].type: expected text or tool_use",
        ),
        (
            {
                "messages": [
                    {"role": "user", "content": [{"type": "image", "source": {"type": "file"}}]}
                ]
            },
            "messages[0].content[0].source.type: expected base64 or url",
        ),
        (
            {"messages": [{"role": "user", "content": [{"type": "tool_result", "content": "x"}]}]},
            "messages[0].content[0].tool_use_id: expected a non-empty string",
        ),
        (
            {
                "messages": [
                    {
                        "role": "assistant",
                        "content": [{"type": "tool_use", "id": "t", "name": "f", "input": []}],
                    }
                ]
            },
            "messages[0].content[0].input: expected an object",
        ),
    ],
)
def test_a_malformed_body_is_refused_naming_the_field(change: JSON, message: str) -> None:
    request = body([{"role": "user", "content": "hi"}])
    request.update(change)
    with pytest.raises(InvalidRequest) as info:
        decode_request({k: v for k, v in request.items() if v is not None})
    assert str(info.value).startswith(message)
    assert info.value.status == 400


# --------------------------------------------------------------------------- encode_response
