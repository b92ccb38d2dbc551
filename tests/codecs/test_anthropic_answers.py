"""The Anthropic Messages codec, answers: messages, stream events, errors and token
counts, checked with the real ``anthropic`` SDK."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import strategies as st

from polyroute.codecs.anthropic_messages import (
    PING,
    StreamEncoder,
    count_tokens,
    decode_request,
    encode_response,
    error_body,
    error_event,
    sse,
)
from polyroute.errors import InvalidRequest
from polyroute.types import JSON

anthropic = pytest.importorskip("anthropic")
httpx2 = pytest.importorskip("httpx2")  # the anthropic SDK 2.x speaks httpx2, not httpx

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


def completion(message: JSON, finish: str = "stop", **choice: Any) -> JSON:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "model": "qwen",
        "choices": [{"index": 0, "message": message, "finish_reason": finish, **choice}],
        "usage": {
            "prompt_tokens": 12,
            "completion_tokens": 5,
            "total_tokens": 17,
            "prompt_tokens_details": {"cached_tokens": 2},
        },
    }


def test_a_text_answer_becomes_a_message_the_sdk_parses() -> None:
    out = encode_response(completion({"role": "assistant", "content": "Hello"}), "qwen")
    assert out == {
        "id": "msg_chatcmpl-1",
        "type": "message",
        "role": "assistant",
        "model": "qwen",
        "content": [{"type": "text", "text": "Hello"}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {
            "input_tokens": 10,
            "output_tokens": 5,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 2,
        },
    }
    parsed = anthropic.types.Message.model_validate(out)
    assert parsed.content[0].text == "Hello"


def test_tool_calls_become_tool_use_blocks_with_parsed_input() -> None:
    calls = [
        {
            "id": "call_1",
            "type": "function",
            "function": {"name": "weather", "arguments": '{"city":"Paris"}'},
        },
        {"id": "call_2", "type": "function", "function": {"name": "now", "arguments": ""}},
        {"id": "call_3", "type": "function", "function": {"name": "bad", "arguments": "{oops"}},
    ]
    answer = completion(
        {"role": "assistant", "content": "Let me check.", "tool_calls": calls}, "tool_calls"
    )
    out = encode_response(answer, "qwen")
    assert out["stop_reason"] == "tool_use"
    assert out["content"] == [
        {"type": "text", "text": "Let me check."},
        {"type": "tool_use", "id": "call_1", "name": "weather", "input": {"city": "Paris"}},
        {"type": "tool_use", "id": "call_2", "name": "now", "input": {}},
        {"type": "text", "text": "[tool call 'bad': arguments were not a JSON object: {oops]"},
        {"type": "tool_use", "id": "call_3", "name": "bad", "input": {}},
    ]
    parsed = anthropic.types.Message.model_validate(out)
    assert [b.type for b in parsed.content] == ["text", "tool_use", "tool_use", "text", "tool_use"]


@pytest.mark.parametrize(
    ("finish", "extra", "reason", "sequence"),
    [
        ("stop", {}, "end_turn", None),
        ("length", {}, "max_tokens", None),
        ("content_filter", {}, "refusal", None),
        ("stop", {"stop_reason": "END"}, "stop_sequence", "END"),
        (None, {}, "end_turn", None),
    ],
)
def test_finish_reasons_map_to_stop_reasons(
    finish: str | None, extra: JSON, reason: str, sequence: str | None
) -> None:
    answer = completion({"role": "assistant", "content": "x"}, finish, **extra)  # type: ignore[arg-type]
    out = encode_response(answer, "m")
    assert (out["stop_reason"], out["stop_sequence"]) == (reason, sequence)
    anthropic.types.Message.model_validate(out)


def test_a_stop_answer_with_tool_calls_is_tool_use() -> None:
    call = {"id": "c", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    answer = completion({"role": "assistant", "content": None, "tool_calls": [call]}, "stop")
    assert encode_response(answer, "m")["stop_reason"] == "tool_use"


# --------------------------------------------------------------------------- streaming


def chunk(delta: JSON, finish: str | None = None) -> JSON:
    return {
        "id": "chatcmpl-9",
        "object": "chat.completion.chunk",
        "model": "qwen",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }


USAGE_CHUNK = {
    "id": "chatcmpl-9",
    "object": "chat.completion.chunk",
    "choices": [],
    "usage": {"prompt_tokens": 9, "completion_tokens": 4, "total_tokens": 13},
}


def encode(chunks: list[JSON], input_tokens: int = 0) -> list[tuple[str, JSON]]:
    encoder = StreamEncoder("qwen", input_tokens)
    events = [e for c in chunks for e in encoder.feed(c)]
    return events + encoder.finish()


def test_a_text_stream_gives_anthropics_event_sequence() -> None:
    chunks = [
        chunk({"role": "assistant", "content": ""}),
        chunk({"content": "Hel"}),
        chunk({"content": "lo"}),
        chunk({}, "stop"),
        USAGE_CHUNK,
    ]
    events = encode(chunks, input_tokens=7)
    assert [name for name, _ in events] == [
        "message_start",
        "ping",
        "content_block_start",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    assert all(data["type"] == name for name, data in events)
    start = events[0][1]["message"]
    assert start["id"] == "msg_chatcmpl-9"
    assert start["usage"] == {"input_tokens": 7, "output_tokens": 0}
    assert events[2][1] == {
        "type": "content_block_start",
        "index": 0,
        "content_block": {"type": "text", "text": ""},
    }
    assert events[3][1]["delta"] == {"type": "text_delta", "text": "Hel"}
    assert events[5][1] == {"type": "content_block_stop", "index": 0}
    assert events[6][1]["delta"] == {"stop_reason": "end_turn", "stop_sequence": None}
    assert events[6][1]["usage"]["output_tokens"] == 4
    assert events[6][1]["usage"]["input_tokens"] == 9


def tool_chunks() -> list[JSON]:
    first = {
        "index": 0,
        "id": "call_1",
        "type": "function",
        "function": {"name": "weather", "arguments": ""},
    }
    second = {
        "index": 1,
        "id": "call_2",
        "type": "function",
        "function": {"name": "weather", "arguments": '{"city":'},
    }
    return [
        chunk({"role": "assistant", "content": "Checking."}),
        chunk({"tool_calls": [first]}),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"city":'}}]}),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": '"Paris"}'}}]}),
        chunk({"tool_calls": [second]}),
        chunk({"tool_calls": [{"index": 1, "function": {"arguments": '"Rome"}'}}]}),
        chunk({}, "tool_calls"),
    ]


def test_text_then_tool_calls_stream_as_consecutive_blocks() -> None:
    events = encode(tool_chunks())
    summary = [
        (
            name,
            data.get("index"),
            (data.get("delta") or data.get("content_block") or {}).get("type"),
        )
        for name, data in events
    ]
    assert summary == [
        ("message_start", None, None),
        ("ping", None, None),
        ("content_block_start", 0, "text"),
        ("content_block_delta", 0, "text_delta"),
        ("content_block_stop", 0, None),
        ("content_block_start", 1, "tool_use"),
        ("content_block_delta", 1, "input_json_delta"),
        ("content_block_delta", 1, "input_json_delta"),
        ("content_block_stop", 1, None),
        ("content_block_start", 2, "tool_use"),
        ("content_block_delta", 2, "input_json_delta"),
        ("content_block_delta", 2, "input_json_delta"),
        ("content_block_stop", 2, None),
        ("message_delta", None, None),
        ("message_stop", None, None),
    ]
    assert events[5][1]["content_block"] == {
        "type": "tool_use",
        "id": "call_1",
        "name": "weather",
        "input": {},
    }
    assert events[-2][1]["delta"]["stop_reason"] == "tool_use"
    assert events[-2][1]["usage"]["output_tokens"] > 0  # estimated: no usage chunk


def test_an_empty_stream_still_starts_and_stops_and_finish_is_once() -> None:
    encoder = StreamEncoder("m")
    events = encoder.finish()
    assert [name for name, _ in events] == [
        "message_start",
        "ping",
        "message_delta",
        "message_stop",
    ]
    assert encoder.finish() == []
    assert encoder.feed(chunk({"content": "late"})) == []


def test_sse_and_ping_bytes() -> None:
    assert sse("message_stop", {"type": "message_stop"}) == (
        b'event: message_stop\ndata: {"type":"message_stop"}\n\n'
    )
    assert PING == b'event: ping\ndata: {"type":"ping"}\n\n'


# --------------------------------------------------------------------------- the real SDK


def sdk_client(handler: Any) -> Any:
    http = httpx2.Client(transport=httpx2.MockTransport(handler))
    return anthropic.Anthropic(
        api_key="k", base_url="http://gateway.test", http_client=http, max_retries=0
    )


def stream_bytes(chunks: list[JSON]) -> bytes:
    return b"".join(sse(name, data) for name, data in encode(chunks, input_tokens=3))


def test_the_sdk_rebuilds_the_final_message_from_our_stream() -> None:
    def handler(request: Any) -> Any:
        sent = orjson.loads(request.content)
        assert decode_request(sent)["stream"] is True
        return httpx2.Response(
            200, content=stream_bytes(tool_chunks()), headers={"content-type": "text/event-stream"}
        )

    client = sdk_client(handler)
    with client.messages.stream(
        model="auto", max_tokens=50, messages=[{"role": "user", "content": "Weather?"}]
    ) as stream:
        message = stream.get_final_message()
    assert message.stop_reason == "tool_use"
    assert message.content[0].type == "text" and message.content[0].text == "Checking."
    inputs = [(b.id, b.input) for b in message.content if b.type == "tool_use"]
    assert inputs == [("call_1", {"city": "Paris"}), ("call_2", {"city": "Rome"})]
    assert message.usage.input_tokens == 3


def test_the_sdk_reads_text_deltas_from_our_stream() -> None:
    chunks = [chunk({"content": "Hel"}), chunk({"content": "lo"}), chunk({}, "length"), USAGE_CHUNK]

    def handler(request: Any) -> Any:
        body = PING + stream_bytes(chunks)
        return httpx2.Response(200, content=body, headers={"content-type": "text/event-stream"})

    with sdk_client(handler).messages.stream(
        model="auto", max_tokens=5, messages=[{"role": "user", "content": "hi"}]
    ) as stream:
        assert "".join(stream.text_stream) == "Hello"
        message = stream.get_final_message()
    assert message.stop_reason == "max_tokens"
    assert (message.usage.input_tokens, message.usage.output_tokens) == (9, 4)


def test_the_sdk_parses_a_non_streamed_message() -> None:
    def handler(request: Any) -> Any:
        answer = completion({"role": "assistant", "content": "Bonjour"})
        return httpx2.Response(200, json=encode_response(answer, "qwen"))

    message = sdk_client(handler).messages.create(
        model="auto", max_tokens=5, messages=[{"role": "user", "content": "hi"}]
    )
    assert message.content[0].text == "Bonjour"
    assert message.usage.input_tokens == 10


@pytest.mark.parametrize(
    ("status", "kind", "exc"),
    [
        (400, "invalid_request_error", "BadRequestError"),
        (401, "authentication_error", "AuthenticationError"),
        (403, "permission_error", "PermissionDeniedError"),
        (404, "not_found_error", "NotFoundError"),
        (413, "request_too_large", "APIStatusError"),
        (429, "rate_limit_error", "RateLimitError"),
        (500, "api_error", "InternalServerError"),
        (502, "api_error", "InternalServerError"),
        (503, "overloaded_error", "InternalServerError"),
        (504, "timeout_error", "InternalServerError"),
        (529, "overloaded_error", "InternalServerError"),
        (418, "invalid_request_error", "APIStatusError"),
    ],
)
def test_errors_have_anthropics_shape_and_the_sdk_raises_the_right_class(
    status: int, kind: str, exc: str
) -> None:
    error = error_body(status, "nope")
    assert error == {"type": "error", "error": {"type": kind, "message": "nope"}}

    def handler(request: Any) -> Any:
        return httpx2.Response(status, json=error)

    with pytest.raises(getattr(anthropic, exc)) as info:
        sdk_client(handler).messages.create(
            model="auto", max_tokens=5, messages=[{"role": "user", "content": "hi"}]
        )
    assert info.value.status_code == status
    assert info.value.body["error"]["type"] == kind  # type: ignore[index]


def test_an_error_event_mid_stream_makes_the_sdk_raise() -> None:
    def handler(request: Any) -> Any:
        body = stream_bytes([chunk({"content": "Hel"})]).split(b"event: message_delta")[0]
        body = body + error_event(529, "upstream went away")
        return httpx2.Response(200, content=body, headers={"content-type": "text/event-stream"})

    client = sdk_client(handler)
    messages = [{"role": "user", "content": "hi"}]
    with (
        pytest.raises(anthropic.APIStatusError, match="upstream went away"),
        client.messages.stream(model="auto", max_tokens=5, messages=messages) as stream,
    ):
        stream.get_final_message()


# --------------------------------------------------------------------------- count_tokens


def test_count_tokens_estimates_text_tools_and_images_without_max_tokens() -> None:
    small = count_tokens({"model": "auto", "messages": [{"role": "user", "content": "abcd" * 10}]})
    assert small == {"input_tokens": 10}
    image = {"type": "image", "source": {"type": "url", "url": "https://x.test/a.png"}}
    bigger = count_tokens(
        {
            "model": "auto",
            "system": "Be brief.",
            "tools": [WEATHER],
            "messages": [
                {"role": "user", "content": [{"type": "text", "text": "abcd" * 10}, image]}
            ],
        }
    )
    assert bigger["input_tokens"] > 1600 + 10
    with pytest.raises(InvalidRequest, match="messages: expected a non-empty list"):
        count_tokens({"model": "auto", "messages": []})
