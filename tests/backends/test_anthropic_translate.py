"""The Anthropic provider: pure translation of requests, responses and stream events."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from anthropic_helpers import WEATHER_TOOL, chat, message

from polyroute.backends.anthropic import StreamTranslator
from polyroute.backends.anthropic_translate import from_anthropic, to_anthropic
from polyroute.errors import InvalidRequest, UpstreamError
from polyroute.types import JSON, Request

# --------------------------------------------------------------------------- request translation


def test_system_messages_become_the_system_field_and_users_become_text_blocks() -> None:
    body = to_anthropic(
        chat(
            [
                {"role": "system", "content": "Be brief."},
                {"role": "developer", "content": [{"type": "text", "text": "Answer in French."}]},
                {"role": "user", "content": "Hi"},
            ]
        ),
        "claude-x",
        stream=False,
    )
    assert body["model"] == "claude-x"
    assert body["system"] == "Be brief.\n\nAnswer in French."
    assert body["messages"] == [{"role": "user", "content": [{"type": "text", "text": "Hi"}]}]
    assert "stream" not in body


def test_no_system_messages_means_no_system_field() -> None:
    body = to_anthropic(chat([{"role": "user", "content": "Hi"}]), "m", stream=True)
    assert "system" not in body
    assert body["stream"] is True


def test_max_tokens_defaults_to_1024_and_prefers_max_completion_tokens() -> None:
    msgs = [{"role": "user", "content": "Hi"}]
    assert to_anthropic(chat(msgs), "m", stream=False)["max_tokens"] == 1024
    assert to_anthropic(chat(msgs, max_tokens=50), "m", stream=False)["max_tokens"] == 50
    both = chat(msgs, max_tokens=50, max_completion_tokens=70)
    assert to_anthropic(both, "m", stream=False)["max_tokens"] == 70


def test_sampling_stop_and_user_fields_are_translated_and_the_rest_dropped() -> None:
    request = chat(
        [{"role": "user", "content": "Hi"}],
        temperature=0.3,
        top_p=0.9,
        stop="END",
        user="alice",
        presence_penalty=1.0,
        n=1,
    )
    body = to_anthropic(request, "m", stream=False)
    assert body["temperature"] == 0.3
    assert body["top_p"] == 0.9
    assert body["stop_sequences"] == ["END"]
    assert body["metadata"] == {"user_id": "alice"}
    assert "presence_penalty" not in body and "n" not in body and "stop" not in body
    listed = chat([{"role": "user", "content": "Hi"}], stop=["a", "b"])
    assert to_anthropic(listed, "m", stream=False)["stop_sequences"] == ["a", "b"]


def test_tool_calls_and_tool_results_become_tool_use_and_merged_tool_result_blocks() -> None:
    body = to_anthropic(
        chat(
            [
                {"role": "user", "content": "Weather in Paris and Rome?"},
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": "call_1",
                            "type": "function",
                            "function": {"name": "weather", "arguments": '{"city": "Paris"}'},
                        },
                        {
                            "id": "call_2",
                            "type": "function",
                            "function": {"name": "weather", "arguments": '{"city": "Rome"}'},
                        },
                    ],
                },
                {"role": "tool", "tool_call_id": "call_1", "content": "18C"},
                {"role": "tool", "tool_call_id": "call_2", "content": "24C"},
                {"role": "user", "content": "Thanks!"},
            ]
        ),
        "m",
        stream=False,
    )
    assert [m["role"] for m in body["messages"]] == ["user", "assistant", "user"]
    assert body["messages"][1]["content"] == [
        {"type": "tool_use", "id": "call_1", "name": "weather", "input": {"city": "Paris"}},
        {"type": "tool_use", "id": "call_2", "name": "weather", "input": {"city": "Rome"}},
    ]
    assert body["messages"][2]["content"] == [
        {"type": "tool_result", "tool_use_id": "call_1", "content": "18C"},
        {"type": "tool_result", "tool_use_id": "call_2", "content": "24C"},
        {"type": "text", "text": "Thanks!"},
    ]


def test_assistant_text_is_kept_before_its_tool_use() -> None:
    call = {"id": "c", "type": "function", "function": {"name": "f", "arguments": ""}}
    msgs = [
        {"role": "user", "content": "go"},
        {"role": "assistant", "content": "Let me check.", "tool_calls": [call]},
    ]
    content = to_anthropic(chat(msgs), "m", stream=False)["messages"][1]["content"]
    assert content == [
        {"type": "text", "text": "Let me check."},
        {"type": "tool_use", "id": "c", "name": "f", "input": {}},
    ]


def test_tool_call_arguments_that_are_not_a_json_object_are_refused() -> None:
    call = {"id": "c", "type": "function", "function": {"name": "f", "arguments": "{oops"}}
    msgs = [{"role": "user", "content": "go"}, {"role": "assistant", "tool_calls": [call]}]
    with pytest.raises(InvalidRequest, match="arguments"):
        to_anthropic(chat(msgs), "m", stream=False)


def test_images_data_urls_become_base64_and_http_urls_become_url_sources() -> None:
    parts = [
        {"type": "text", "text": "Compare"},
        {
            "type": "image_url",
            "image_url": {"url": "data:image/png;base64,iVBORw0K", "detail": "low"},
        },
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}},
    ]
    content = to_anthropic(chat([{"role": "user", "content": parts}]), "m", stream=False)[
        "messages"
    ][0]["content"]
    assert content == [
        {"type": "text", "text": "Compare"},
        {
            "type": "image",
            "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0K"},
        },
        {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}},
    ]


@pytest.mark.parametrize(
    "part",
    [
        {"type": "image_url", "image_url": {"url": "data:image/png,notbase64"}},
        {"type": "input_audio", "input_audio": {"data": "x", "format": "wav"}},
    ],
)
def test_unsupported_content_parts_are_refused(part: JSON) -> None:
    with pytest.raises(InvalidRequest):
        to_anthropic(chat([{"role": "user", "content": [part]}]), "m", stream=False)


def test_function_tools_become_anthropic_tools_with_input_schema() -> None:
    bare = {"type": "function", "function": {"name": "now"}}
    body = to_anthropic(
        chat([{"role": "user", "content": "hi"}], tools=[WEATHER_TOOL, bare]), "m", stream=False
    )
    assert body["tools"] == [
        {
            "name": "weather",
            "description": "Current weather",
            "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
        {"name": "now", "input_schema": {"type": "object", "properties": {}}},
    ]
    assert "tool_choice" not in body


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        ("auto", {"type": "auto"}),
        ("none", {"type": "none"}),
        ("required", {"type": "any"}),
        (
            {"type": "function", "function": {"name": "weather"}},
            {"type": "tool", "name": "weather"},
        ),
    ],
)
def test_tool_choice_is_translated(choice: Any, expected: JSON) -> None:
    request = chat([{"role": "user", "content": "hi"}], tools=[WEATHER_TOOL], tool_choice=choice)
    assert to_anthropic(request, "m", stream=False)["tool_choice"] == expected


def test_parallel_tool_calls_false_disables_parallel_tool_use() -> None:
    request = chat(
        [{"role": "user", "content": "hi"}], tools=[WEATHER_TOOL], parallel_tool_calls=False
    )
    choice = to_anthropic(request, "m", stream=False)["tool_choice"]
    assert choice == {"type": "auto", "disable_parallel_tool_use": True}


def test_non_function_tools_are_refused() -> None:
    request = chat([{"role": "user", "content": "hi"}], tools=[{"type": "web_search"}])
    with pytest.raises(InvalidRequest, match="function"):
        to_anthropic(request, "m", stream=False)


def test_a_text_completion_prompt_is_sent_as_one_user_message() -> None:
    request = Request({"model": "auto", "prompt": ["Once upon"], "max_tokens": 5}, "completions")
    body = to_anthropic(request, "m", stream=False)
    assert body["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "Once upon"}]}
    ]
    assert body["max_tokens"] == 5
    batched = Request({"model": "auto", "prompt": ["a", "b"]}, "completions")
    with pytest.raises(InvalidRequest, match="prompt"):
        to_anthropic(batched, "m", stream=False)


# --------------------------------------------------------------------------- response translation


def test_a_text_message_becomes_a_chat_completion() -> None:
    out = from_anthropic(
        message([{"type": "text", "text": "Hello "}, {"type": "text", "text": "there"}]),
        "chat",
        "claude-test",
    )
    assert out["object"] == "chat.completion"
    assert out["id"] == "msg_01"
    assert out["model"] == "claude-test"
    assert isinstance(out["created"], int)
    assert out["choices"] == [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "Hello there"},
            "logprobs": None,
            "finish_reason": "stop",
        }
    ]
    assert out["usage"]["prompt_tokens"] == 10
    assert out["usage"]["completion_tokens"] == 5
    assert out["usage"]["total_tokens"] == 15


def test_tool_use_becomes_tool_calls_with_json_string_arguments() -> None:
    data = message(
        [{"type": "tool_use", "id": "toolu_1", "name": "weather", "input": {"city": "Paris"}}],
        stop_reason="tool_use",
    )
    choice = from_anthropic(data, "chat", "m")["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] is None
    [call] = choice["message"]["tool_calls"]
    assert call["id"] == "toolu_1" and call["type"] == "function"
    assert call["function"]["name"] == "weather"
    assert isinstance(call["function"]["arguments"], str)
    assert orjson.loads(call["function"]["arguments"]) == {"city": "Paris"}


@pytest.mark.parametrize(
    ("stop_reason", "finish"),
    [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("max_tokens", "length"),
        ("tool_use", "tool_calls"),
        ("refusal", "content_filter"),
    ],
)
def test_stop_reasons_map_to_finish_reasons(stop_reason: str, finish: str) -> None:
    data = message([{"type": "text", "text": "x"}], stop_reason=stop_reason)
    assert from_anthropic(data, "chat", "m")["choices"][0]["finish_reason"] == finish


def test_prompt_tokens_include_cache_reads_and_writes() -> None:
    data = message(
        [{"type": "text", "text": "x"}], cache_read_input_tokens=100, cache_creation_input_tokens=20
    )
    usage = from_anthropic(data, "chat", "m")["usage"]
    assert usage["prompt_tokens"] == 130
    assert usage["total_tokens"] == 135
    assert usage["prompt_tokens_details"] == {"cached_tokens": 100}


def test_a_message_for_a_completions_request_becomes_a_text_completion() -> None:
    out = from_anthropic(
        message([{"type": "text", "text": "a time"}], "max_tokens"), "completions", "m"
    )
    assert out["object"] == "text_completion"
    assert out["choices"] == [
        {"index": 0, "text": "a time", "logprobs": None, "finish_reason": "length"}
    ]


def test_a_response_that_is_not_a_message_is_an_upstream_error() -> None:
    with pytest.raises(UpstreamError):
        from_anthropic({"type": "error", "error": {"type": "x"}}, "chat", "m")


def test_the_finish_chunk_is_held_back_until_message_stop() -> None:
    t = StreamTranslator("chat", "m")
    assert t.feed({"type": "message_start", "message": {"id": "msg_1", "model": "m"}})
    assert t.feed({"type": "message_delta", "delta": {"stop_reason": "end_turn"}}) == []
    assert not t.done
    [final] = t.feed({"type": "message_stop"})
    assert t.done
    assert final["id"] == "msg_1"
    assert final["choices"][0]["finish_reason"] == "stop"


def test_an_error_event_raises() -> None:
    t = StreamTranslator("chat", "m")
    event = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    with pytest.raises(UpstreamError, match="overloaded_error"):
        t.feed(event)
