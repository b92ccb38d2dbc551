"""The Responses codec: decode of every input form, refusals naming the field, SDK
validation of Response objects and stream events, and the chat round trip property."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from openai.types.responses import Response, ResponseStreamEvent
from pydantic import TypeAdapter

from polyroute.codecs.openai_responses import (
    FieldError,
    StreamEncoder,
    conversation_after,
    decode_request,
    encode_response,
    new_response_id,
    response_messages,
    sse,
)
from polyroute.errors import InvalidRequest

EVENTS: TypeAdapter[Any] = TypeAdapter(ResponseStreamEvent)
RID = "resp_" + "ab" * 16


def answer(
    text: str | None = "hi", calls: list[tuple[str, str, str]] = (), finish: str = "stop"
) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": text}
    if calls:
        message["tool_calls"] = [
            {"id": i, "type": "function", "function": {"name": n, "arguments": a}}
            for i, n, a in calls
        ]
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1,
        "model": "small",
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
        "usage": {
            "prompt_tokens": 7,
            "completion_tokens": 3,
            "total_tokens": 10,
            "prompt_tokens_details": {"cached_tokens": 2},
        },
    }


# --------------------------------------------------------------------------- decode


def test_string_input_and_instructions() -> None:
    body = {"model": "auto", "instructions": "Be brief.", "input": "Hello"}
    assert decode_request(body) == {
        "model": "auto",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Hello"},
        ],
    }


def test_history_goes_between_instructions_and_input() -> None:
    history = [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]
    body = {"instructions": "sys", "input": "c", "previous_response_id": RID, "store": True}
    chat = decode_request(body, history)
    assert [m["content"] for m in chat["messages"]] == ["sys", "a", "b", "c"]
    assert "previous_response_id" not in chat and "store" not in chat


def test_input_items_of_every_kind() -> None:
    body = {
        "model": "m",
        "input": [
            {"role": "developer", "content": "rules"},
            {
                "type": "message",
                "role": "user",
                "content": [
                    {"type": "input_text", "text": "what is this?"},
                    {
                        "type": "input_image",
                        "image_url": "data:image/png;base64,AA",
                        "detail": "low",
                    },
                ],
            },
            {
                "type": "message",
                "role": "assistant",
                "content": [{"type": "output_text", "text": "let me look", "annotations": []}],
            },
            {"type": "function_call", "call_id": "c1", "name": "f", "arguments": '{"x":1}'},
            {"type": "function_call", "call_id": "c2", "name": "g", "arguments": "{}"},
            {"type": "function_call_output", "call_id": "c1", "output": "one"},
            {
                "type": "function_call_output",
                "call_id": "c2",
                "output": [{"type": "input_text", "text": "two"}],
            },
            {"type": "reasoning", "id": "rs_1", "summary": []},
        ],
    }
    assert decode_request(body)["messages"] == [
        {"role": "system", "content": "rules"},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "what is this?"},
                {
                    "type": "image_url",
                    "image_url": {"url": "data:image/png;base64,AA", "detail": "low"},
                },
            ],
        },
        {
            "role": "assistant",
            "content": "let me look",
            "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "f", "arguments": '{"x":1}'}},
                {"id": "c2", "type": "function", "function": {"name": "g", "arguments": "{}"}},
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "one"},
        {"role": "tool", "tool_call_id": "c2", "content": "two"},
    ]


def test_tools_formats_and_sampling() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "string"}}}
    body = {
        "input": "x",
        "tools": [
            {
                "type": "function",
                "name": "f",
                "description": "d",
                "parameters": schema,
                "strict": True,
            }
        ],
        "tool_choice": {"type": "function", "name": "f"},
        "text": {
            "format": {"type": "json_schema", "name": "out", "schema": schema, "strict": True}
        },
        "max_output_tokens": 50,
        "temperature": 0.2,
        "top_p": 0.9,
        "user": "u",
        "metadata": {"k": "v"},
        "stream": True,
    }
    chat = decode_request(body)
    assert chat["tools"] == [
        {
            "type": "function",
            "function": {"name": "f", "description": "d", "parameters": schema, "strict": True},
        }
    ]
    assert chat["tool_choice"] == {"type": "function", "function": {"name": "f"}}
    assert chat["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "out", "schema": schema, "strict": True},
    }
    assert chat["max_tokens"] == 50 and chat["temperature"] == 0.2 and chat["top_p"] == 0.9
    assert chat["user"] == "u" and chat["metadata"] == {"k": "v"}
    assert chat["stream"] is True and chat["stream_options"] == {"include_usage": True}
    assert decode_request({"input": "x", "text": {"format": {"type": "json_object"}}})[
        "response_format"
    ] == {"type": "json_object"}


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"input": "x", "tools": [{"type": "web_search"}]}, "tools[0].type"),
        ({"input": "x", "tools": [{"type": "function"}]}, "tools[0].name"),
        ({"input": 3}, "input"),
        (
            {"input": [{"role": "user", "content": [{"type": "input_audio"}]}]},
            "input[0].content[0].type",
        ),
        (
            {"input": [{"role": "user", "content": "a"}, {"role": "robot", "content": "b"}]},
            "input[1].role",
        ),
        ({"input": [{"type": "function_call", "call_id": "c", "name": "f"}]}, "input[0].arguments"),
        ({"input": [{"type": "file_search_call", "id": "x"}]}, "input[0].type"),
        (
            {"input": [{"role": "user", "content": [{"type": "input_image", "file_id": "f"}]}]},
            "input[0].content[0].image_url",
        ),
        ({"input": "x", "temperature": True}, "temperature"),
        ({"input": "x", "max_output_tokens": "9"}, "max_output_tokens"),
        ({"input": "x", "text": {"format": {"type": "xml"}}}, "text.format.type"),
        ({"input": "x", "tool_choice": {"type": "web_search_preview"}}, "tool_choice.type"),
        ({"input": "x", "background": True}, "background"),
        ({"input": "x", "instructions": ["a"]}, "instructions"),
    ],
)
def test_malformed_or_unservable_fields_are_refused_by_path(
    body: dict[str, Any], param: str
) -> None:
    with pytest.raises(InvalidRequest) as info:
        decode_request(body)
    assert isinstance(info.value, FieldError)
    assert info.value.param == param
    assert info.value.status == 400
    assert param in info.value.message


# --------------------------------------------------------------------------- encode


def test_text_answer_validates_with_the_sdk() -> None:
    body = {"model": "auto", "instructions": "sys", "input": "hi", "temperature": 0.5}
    out = encode_response(answer("hello"), body, RID, 1700000000)
    response = Response.model_validate(out)
    assert response.output_text == "hello"
    assert response.status == "completed" and response.model == "small"
    assert response.instructions == "sys" and response.temperature == 0.5
    assert response.usage is not None
    assert (response.usage.input_tokens, response.usage.output_tokens) == (7, 3)
    assert response.usage.input_tokens_details.cached_tokens == 2
    assert "output_text" not in out  # an SDK convenience, not part of the wire format


def test_tool_calls_become_function_call_items() -> None:
    tools = [{"type": "function", "name": "f", "parameters": {"type": "object"}}]
    body = {"input": "hi", "tools": tools}
    out = encode_response(answer(None, [("call_1", "f", '{"a":1}')]), body, RID, 1)
    response = Response.model_validate(out)
    assert [item.type for item in response.output] == ["function_call"]
    call = response.output[0]
    assert call.type == "function_call"
    assert (call.call_id, call.name, call.arguments) == ("call_1", "f", '{"a":1}')
    assert response.tools[0].type == "function" and response.tools[0].name == "f"


def test_garbage_usage_counts_do_not_break_the_response() -> None:
    bad = answer("x")
    bad["usage"] = {"prompt_tokens": "7", "completion_tokens": -1, "total_tokens": None}
    response = Response.model_validate(encode_response(bad, {"input": "x"}, RID, 1))
    assert response.usage is not None and response.usage.total_tokens == 0


def test_length_makes_an_incomplete_response() -> None:
    response = Response.model_validate(
        encode_response(answer("cut", finish="length"), {"input": "x"}, RID, 1)
    )
    assert response.status == "incomplete"
    assert response.incomplete_details is not None
    assert response.incomplete_details.reason == "max_output_tokens"


def test_new_response_ids_are_unique_and_shaped() -> None:
    ids = {new_response_id() for _ in range(100)}
    assert len(ids) == 100
    assert all(i.startswith("resp_") and len(i) == 37 for i in ids)


# --------------------------------------------------------------------------- stream


def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> dict[str, Any]:
    choice = {"index": 0, "delta": delta, "finish_reason": finish}
    return {"object": "chat.completion.chunk", "model": "small", "choices": [choice], **extra}


def run_stream(
    chunks: list[dict[str, Any]], body: dict[str, Any]
) -> tuple[list[Any], StreamEncoder]:
    encoder = StreamEncoder(body, RID, 5)
    events: list[dict[str, Any]] = []
    for c in chunks:
        events += encoder.feed(c)
    events += encoder.finish()
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    return [EVENTS.validate_python(e) for e in events], encoder


def test_text_stream_events_validate_and_add_up() -> None:
    usage = {"prompt_tokens": 4, "completion_tokens": 2, "total_tokens": 6}
    chunks = [
        chunk({"role": "assistant", "content": ""}),
        chunk({"content": "Hel"}),
        chunk({"content": "lo"}),
        chunk({}, "stop"),
        {"object": "chat.completion.chunk", "model": "small", "choices": [], "usage": usage},
    ]
    events, encoder = run_stream(chunks, {"model": "auto", "input": "hi"})
    assert [e.type for e in events] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert events[6].text == "Hello"
    final = events[-1].response
    assert final.output_text == "Hello" and final.usage.total_tokens == 6
    assert encoder.response is not None
    assert Response.model_validate(encoder.response) == final
    assert final.output[0].id == events[2].item.id == events[4].item_id


def test_tool_call_stream_and_text_before_it() -> None:
    def call(index: int, id_: str | None, name: str | None, args: str) -> dict[str, Any]:
        fn = {"arguments": args} | ({"name": name} if name else {})
        return {"index": index, **({"id": id_} if id_ else {}), "type": "function", "function": fn}

    chunks = [
        chunk({"content": "Checking."}),
        chunk({"tool_calls": [call(0, "c1", "f", "")]}),
        chunk({"tool_calls": [call(0, None, None, '{"a"')]}),
        chunk({"tool_calls": [call(0, None, None, ":1}")]}),
        chunk({"tool_calls": [call(1, "c2", "g", "{}")]}),
        chunk({}, "tool_calls"),
    ]
    events, encoder = run_stream(
        chunks, {"input": "x", "tools": [{"type": "function", "name": "f"}]}
    )
    done = [e for e in events if e.type == "response.function_call_arguments.done"]
    assert [d.arguments for d in done] == ['{"a":1}', "{}"]
    final = events[-1].response
    assert [i.type for i in final.output] == ["message", "function_call", "function_call"]
    assert [(i.call_id, i.name) for i in final.output[1:]] == [("c1", "f"), ("c2", "g")]
    # what the conversation store keeps equals the non-streamed answer's messages
    assert encoder.response is not None
    same = encode_response(
        answer("Checking.", [("c1", "f", '{"a":1}'), ("c2", "g", "{}")]), {"input": "x"}, RID, 5
    )
    assert response_messages(encoder.response) == response_messages(same)


def test_cut_stream_is_incomplete_and_empty_stream_still_completes() -> None:
    events, _ = run_stream([chunk({"content": "a"}), chunk({}, "length")], {"input": "x"})
    assert events[-1].type == "response.incomplete"
    assert events[-2].item.status == "incomplete"
    events, _ = run_stream([], {"input": "x"})
    assert [e.type for e in events] == [
        "response.created",
        "response.in_progress",
        "response.completed",
    ]


def test_a_broken_stream_ends_with_response_failed() -> None:
    encoder = StreamEncoder({"input": "x"}, RID, 5)
    events = encoder.feed(chunk({"content": "par"})) + encoder.fail("upstream broke")
    parsed = [EVENTS.validate_python(e) for e in events]
    assert parsed[-1].type == "response.failed"
    assert parsed[-1].response.status == "failed"
    assert parsed[-1].response.error.message == "upstream broke"
    assert [e["sequence_number"] for e in events] == list(range(len(events)))


def test_sse_frame() -> None:
    event = {"type": "response.output_text.delta", "sequence_number": 3, "delta": "é\n"}
    frame = sse(event)
    assert frame.startswith(b"event: response.output_text.delta\ndata: {")
    assert frame.endswith(b"\n\n") and frame.count(b"\n") == 3
    assert orjson.loads(frame.split(b"data: ", 1)[1]) == event
    assert StreamEncoder.sse(event) == frame


# --------------------------------------------------------------------------- round trip

TEXT = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=20)
NAME = st.from_regex(r"[a-z][a-z0-9_]{0,8}", fullmatch=True)
SCHEMA = st.fixed_dictionaries(
    {
        "type": st.just("object"),
        "properties": st.dictionaries(NAME, st.just({"type": "string"}), max_size=2),
    }
)


@st.composite
def chat_bodies(draw: st.DrawFn) -> dict[str, Any]:
    """Chat bodies whose every field the Responses format can express too."""
    messages: list[dict[str, Any]] = []
    if draw(st.booleans()):
        messages.append({"role": "system", "content": draw(TEXT.filter(bool))})
    for turn in range(draw(st.integers(1, 4))):
        messages.append({"role": "user", "content": draw(TEXT)})
        calls = [
            {
                "id": f"call_{turn}_{i}",
                "type": "function",
                "function": {"name": draw(NAME), "arguments": draw(TEXT)},
            }
            for i in range(draw(st.integers(0, 2)))
        ]
        text = draw(st.one_of(TEXT, st.none()) if calls else TEXT)
        assistant: dict[str, Any] = {"role": "assistant", "content": text}
        if calls:
            assistant["tool_calls"] = calls
        messages.append(assistant)
        messages += [
            {"role": "tool", "tool_call_id": c["id"], "content": draw(TEXT)} for c in calls
        ]
    body: dict[str, Any] = {"model": draw(NAME), "messages": messages}
    if draw(st.booleans()):
        body["tools"] = [
            {"type": "function", "function": {"name": n, "description": d, "parameters": p}}
            for n, d, p in draw(st.lists(st.tuples(NAME, TEXT, SCHEMA), min_size=1, max_size=2))
        ]
        body["tool_choice"] = draw(st.sampled_from(["auto", "none", "required"]))
    optional = {
        "temperature": st.floats(0, 2),
        "top_p": st.floats(0, 1),
        "max_tokens": st.integers(1, 4096),
        "user": TEXT,
        "metadata": st.dictionaries(NAME, TEXT, max_size=2),
        "parallel_tool_calls": st.booleans(),
        "response_format": st.one_of(
            st.just({"type": "json_object"}),
            st.builds(
                lambda n, s: {
                    "type": "json_schema",
                    "json_schema": {"name": n, "schema": s, "strict": True},
                },
                NAME,
                SCHEMA,
            ),
        ),
    }
    for key, strategy in optional.items():
        if draw(st.booleans()):
            body[key] = draw(strategy)
    return body


def chat_to_responses(chat: dict[str, Any]) -> dict[str, Any]:
    """The inverse translation, for the property: a chat body as a Responses body."""
    messages = list(chat["messages"])
    body: dict[str, Any] = {"model": chat["model"], "input": []}
    if messages and messages[0]["role"] == "system":
        body["instructions"] = messages.pop(0)["content"]
    for m in messages:
        if m["role"] == "tool":
            body["input"].append(
                {
                    "type": "function_call_output",
                    "call_id": m["tool_call_id"],
                    "output": m["content"],
                }
            )
            continue
        if m["content"] is not None:
            body["input"].append({"type": "message", "role": m["role"], "content": m["content"]})
        for c in m.get("tool_calls", []):
            fn = c["function"]
            body["input"].append(
                {
                    "type": "function_call",
                    "call_id": c["id"],
                    "name": fn["name"],
                    "arguments": fn["arguments"],
                }
            )
    if "tools" in chat:
        body["tools"] = [{"type": "function", **t["function"]} for t in chat["tools"]]
    renames = {"max_tokens": "max_output_tokens"}
    for key in (
        "tool_choice",
        "temperature",
        "top_p",
        "max_tokens",
        "user",
        "metadata",
        "parallel_tool_calls",
    ):
        if key in chat:
            body[renames.get(key, key)] = chat[key]
    if "response_format" in chat:
        fmt = chat["response_format"]
        body["text"] = {"format": {"type": fmt["type"], **fmt.get("json_schema", {})}}
    return body


@settings(max_examples=150, deadline=None)
@given(chat_bodies())
def test_chat_to_responses_and_back_loses_nothing(chat: dict[str, Any]) -> None:
    body = chat_to_responses(chat)
    assert decode_request(body) == chat
    # whatever the request set, the Response that echoes it is valid for the SDK
    response = Response.model_validate(encode_response(answer("ok"), body, RID, 1))
    assert response.output_text == "ok"
    assert response.temperature == body.get("temperature", 1.0)


@settings(max_examples=100, deadline=None)
@given(
    st.one_of(TEXT, st.none()),
    st.lists(st.tuples(NAME, TEXT), max_size=3),
)
def test_answers_survive_encode_then_stored_messages(
    text: str | None, calls: list[tuple[str, str]]
) -> None:
    """An answer's text and tool calls come back from its Response object unchanged."""
    calls_ = [(f"call_{i}", n, a) for i, (n, a) in enumerate(calls)]
    chat_answer = answer(text, calls_)
    response = encode_response(chat_answer, {"input": "q"}, RID, 1)
    Response.model_validate(response)
    expected = dict(chat_answer["choices"][0]["message"])
    if not calls_:
        expected["content"] = text or ""
    elif not text:
        expected["content"] = None
    assert response_messages(response) == [expected]
    assert conversation_after({"input": "q"}, [], response) == [
        {"role": "user", "content": "q"},
        expected,
    ]


# --------------------------------------------------------------------------- the SDK end to end


def test_the_openai_client_reads_our_stream_and_response() -> None:
    """The official client, over an in-process transport that answers with our bytes."""
    import httpx
    import openai

    def handler(request: httpx.Request) -> httpx.Response:
        body = orjson.loads(request.content)
        chat = decode_request(body)
        if not chat.get("stream"):
            out = encode_response(answer("Hello"), body, RID, 1)
            return httpx.Response(200, json=out)
        encoder = StreamEncoder(body, RID, 1)
        frames = [chunk({"content": "Hel"}), chunk({"content": "lo"}), chunk({}, "stop")]
        events = [e for c in frames for e in encoder.feed(c)] + encoder.finish()
        data = b"".join(sse(e) for e in events)
        return httpx.Response(200, content=data, headers={"content-type": "text/event-stream"})

    http = httpx.Client(transport=httpx.MockTransport(handler))
    client = openai.OpenAI(api_key="k", base_url="http://gateway/v1", http_client=http)
    response = client.responses.create(model="auto", input="hi", instructions="sys")
    assert response.output_text == "Hello" and response.id == RID
    with client.responses.stream(model="auto", input="hi") as stream:
        deltas = [e.delta for e in stream if e.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert deltas == ["Hel", "lo"] and final.output_text == "Hello"
    http.close()
