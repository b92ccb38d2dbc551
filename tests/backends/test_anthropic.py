"""The Anthropic provider on the wire, against a fake Messages API on loopback."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest
from aiohttp import web
from anthropic_helpers import WEATHER_TOOL, chat, message

from polyroute.backends.anthropic import AnthropicProvider
from polyroute.errors import InvalidRequest, UpstreamError, UpstreamStatus, UpstreamTimeout
from polyroute.types import JSON, Request

# --------------------------------------------------------------------------- fake Anthropic server

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class FakeAnthropic:
    """Records every request and answers with ``reply`` (a plain text message by default)."""

    url: str = ""
    seen: list[tuple[str, dict[str, str], JSON]] = field(default_factory=list)
    reply: Handler | None = None
    release: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.seen.append((request.path, dict(request.headers), body))
        if self.reply is not None:
            return await self.reply(request)
        return web.json_response(message([{"type": "text", "text": "Bonjour"}]))


@pytest.fixture
async def fake() -> AsyncIterator[FakeAnthropic]:
    server = FakeAnthropic()
    app = web.Application()
    app.router.add_post("/v1/messages", server.handle)
    runner = web.AppRunner(app, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    server.url = f"http://127.0.0.1:{port}"
    yield server
    server.release.set()
    await runner.cleanup()


@pytest.fixture
async def provider(fake: FakeAnthropic) -> AsyncIterator[AnthropicProvider]:
    p = AnthropicProvider(fake.url, api_key="sk-ant-test")
    yield p
    await p.aclose()


def sse(events: list[JSON], complete: bool = True) -> Handler:
    """A handler that streams ``events`` (plus ``message_stop`` when complete) as Anthropic SSE."""

    async def reply(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await resp.prepare(request)
        tail = [{"type": "message_stop"}] if complete else []
        for event in events + tail:
            await resp.write(f"event: {event['type']}\n".encode())
            await resp.write(b"data: " + orjson.dumps(event) + b"\n\n")
        await resp.write_eof()
        return resp

    return reply


START = {
    "type": "message_start",
    "message": {
        "id": "msg_s",
        "type": "message",
        "role": "assistant",
        "model": "claude-test",
        "content": [],
        "stop_reason": None,
        "usage": {"input_tokens": 12, "output_tokens": 1},
    },
}


def block_start(index: int, block: JSON) -> JSON:
    return {"type": "content_block_start", "index": index, "content_block": block}


def block_delta(index: int, delta: JSON) -> JSON:
    return {"type": "content_block_delta", "index": index, "delta": delta}


TEXT_EVENTS: list[JSON] = [
    START,
    block_start(0, {"type": "text", "text": ""}),
    {"type": "ping"},
    block_delta(0, {"type": "text_delta", "text": "Bon"}),
    block_delta(0, {"type": "text_delta", "text": "jour"}),
    {"type": "content_block_stop", "index": 0},
    {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 3}},
]


async def collect(stream: Any) -> list[JSON]:
    return [chunk async for chunk in stream]


async def test_complete_sends_the_key_as_x_api_key_and_translates_both_ways(
    fake: FakeAnthropic, provider: AnthropicProvider
) -> None:
    request = chat([{"role": "system", "content": "Sys"}, {"role": "user", "content": "Hi"}])
    out = await provider.complete(request, "claude-test", timeout_s=5)
    assert out["object"] == "chat.completion"
    assert out["choices"][0]["message"]["content"] == "Bonjour"
    [(path, headers, body)] = fake.seen
    assert path == "/v1/messages"
    assert headers["x-api-key"] == "sk-ant-test"
    assert headers["anthropic-version"] == "2023-06-01"
    assert "Authorization" not in headers
    assert body["model"] == "claude-test"
    assert body["system"] == "Sys"
    assert body["max_tokens"] == 1024
    assert "stream" not in body


async def test_a_base_url_ending_in_v1_is_not_doubled(fake: FakeAnthropic) -> None:
    p = AnthropicProvider(fake.url + "/v1/", anthropic_version="2024-01-01")
    try:
        await p.complete(chat([{"role": "user", "content": "Hi"}]), "m", timeout_s=5)
    finally:
        await p.aclose()
    [(path, headers, _)] = fake.seen
    assert path == "/v1/messages"
    assert headers["anthropic-version"] == "2024-01-01"
    assert "x-api-key" not in headers


async def test_complete_for_the_completions_endpoint_returns_a_text_completion(
    fake: FakeAnthropic, provider: AnthropicProvider
) -> None:
    request = Request({"model": "auto", "prompt": "Say hi"}, "completions")
    out = await provider.complete(request, "m", timeout_s=5)
    assert out["object"] == "text_completion"
    assert out["choices"][0]["text"] == "Bonjour"
    assert fake.seen[0][2]["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "Say hi"}]}
    ]


async def test_streaming_text_becomes_chat_completion_chunks(
    fake: FakeAnthropic, provider: AnthropicProvider
) -> None:
    fake.reply = sse(TEXT_EVENTS)
    request = chat(
        [{"role": "user", "content": "Hi"}], stream=True, stream_options={"include_usage": True}
    )
    stream = await provider.open_stream(request, "m", timeout_s=5, idle_timeout_s=5)
    chunks = await collect(stream)
    assert fake.seen[0][2]["stream"] is True
    assert {c["object"] for c in chunks} == {"chat.completion.chunk"}
    assert {c["id"] for c in chunks} == {"msg_s"}
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    with_choices = [c for c in chunks if c["choices"]]
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in with_choices)
    assert text == "Bonjour"
    assert with_choices[-1]["choices"][0]["finish_reason"] == "stop"
    assert all(c["choices"][0]["finish_reason"] is None for c in with_choices[:-1])
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"]["prompt_tokens"] == 12
    assert chunks[-1]["usage"]["completion_tokens"] == 3


async def test_streaming_tool_use_becomes_tool_call_deltas(
    fake: FakeAnthropic, provider: AnthropicProvider
) -> None:
    tool_start = {"type": "tool_use", "id": "toolu_9", "name": "weather", "input": {}}
    fake.reply = sse(
        [
            START,
            block_start(0, {"type": "text", "text": ""}),
            block_delta(0, {"type": "text_delta", "text": "Ok"}),
            {"type": "content_block_stop", "index": 0},
            block_start(1, tool_start),
            block_delta(1, {"type": "input_json_delta", "partial_json": ""}),
            block_delta(1, {"type": "input_json_delta", "partial_json": '{"city": "Pa'}),
            block_delta(1, {"type": "input_json_delta", "partial_json": 'ris"}'}),
            {"type": "content_block_stop", "index": 1},
            {"type": "message_delta", "delta": {"stop_reason": "tool_use"}},
        ]
    )
    request = chat([{"role": "user", "content": "Weather?"}], tools=[WEATHER_TOOL], stream=True)
    stream = await provider.open_stream(request, "m", timeout_s=5, idle_timeout_s=5)
    chunks = await collect(stream)
    assert fake.seen[0][2]["tools"][0]["name"] == "weather"
    deltas = [c["choices"][0]["delta"] for c in chunks]
    calls = [tc for d in deltas for tc in d.get("tool_calls", [])]
    assert calls[0] == {
        "index": 0,
        "id": "toolu_9",
        "type": "function",
        "function": {"name": "weather", "arguments": ""},
    }
    assert {tc["index"] for tc in calls} == {0}
    arguments = "".join(tc["function"]["arguments"] for tc in calls)
    assert orjson.loads(arguments) == {"city": "Paris"}
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"
    assert "usage" not in chunks[-1]  # not asked for with stream_options


async def test_streaming_a_completions_request_yields_text_completion_chunks(
    fake: FakeAnthropic, provider: AnthropicProvider
) -> None:
    fake.reply = sse(TEXT_EVENTS)
    request = Request({"model": "auto", "prompt": "Hi", "stream": True}, "completions")
    chunks = await collect(await provider.open_stream(request, "m", timeout_s=5, idle_timeout_s=5))
    assert {c["object"] for c in chunks} == {"text_completion"}
    assert "".join(c["choices"][0]["text"] for c in chunks) == "Bonjour"
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"


async def test_a_stream_cut_before_message_stop_raises_and_never_finishes(
    fake: FakeAnthropic, provider: AnthropicProvider
) -> None:
    fake.reply = sse(TEXT_EVENTS, complete=False)  # even message_delta arrived
    stream = await provider.open_stream(
        chat([{"role": "user", "content": "Hi"}]), "m", timeout_s=5, idle_timeout_s=5
    )
    received: list[JSON] = []
    with pytest.raises(UpstreamError, match="message_stop"):
        async for chunk in stream:
            received.append(chunk)
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in received) == "Bonjour"
    assert all(c["choices"][0]["finish_reason"] is None for c in received)


async def test_an_error_event_mid_stream_raises(
    fake: FakeAnthropic, provider: AnthropicProvider
) -> None:
    error = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    fake.reply = sse([*TEXT_EVENTS[:4], error])
    stream = await provider.open_stream(
        chat([{"role": "user", "content": "Hi"}]), "m", timeout_s=5, idle_timeout_s=5
    )
    with pytest.raises(UpstreamError, match="Overloaded"):
        await collect(stream)


async def test_a_silent_stream_hits_the_idle_timeout(
    fake: FakeAnthropic, provider: AnthropicProvider
) -> None:
    async def stall(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await resp.prepare(request)
        await resp.write(b"event: message_start\ndata: " + orjson.dumps(START) + b"\n\n")
        await fake.release.wait()
        return resp

    fake.reply = stall
    stream = await provider.open_stream(
        chat([{"role": "user", "content": "Hi"}]), "m", timeout_s=5, idle_timeout_s=0.2
    )
    with pytest.raises(UpstreamTimeout):
        await collect(stream)


@pytest.mark.parametrize("streaming", [False, True])
async def test_429_with_retry_after_is_an_upstream_status_with_retry_after(
    fake: FakeAnthropic, provider: AnthropicProvider, streaming: bool
) -> None:
    async def busy(request: web.Request) -> web.StreamResponse:
        body = {"type": "error", "error": {"type": "rate_limit_error", "message": "slow down"}}
        return web.json_response(body, status=429, headers={"retry-after": "7"})

    fake.reply = busy
    request = chat([{"role": "user", "content": "Hi"}], stream=streaming)
    with pytest.raises(UpstreamStatus) as info:
        if streaming:
            await provider.open_stream(request, "m", timeout_s=5, idle_timeout_s=5)
        else:
            await provider.complete(request, "m", timeout_s=5)
    assert info.value.upstream_status == 429
    assert info.value.retry_after_s == 7.0
    assert b"rate_limit_error" in info.value.body


async def test_a_400_is_passed_through_as_the_clients_fault(
    fake: FakeAnthropic, provider: AnthropicProvider
) -> None:
    async def reject(request: web.Request) -> web.StreamResponse:
        body = {"type": "error", "error": {"type": "invalid_request_error", "message": "bad"}}
        return web.json_response(body, status=400)

    fake.reply = reject
    with pytest.raises(UpstreamStatus) as info:
        await provider.complete(chat([{"role": "user", "content": "Hi"}]), "m", timeout_s=5)
    assert info.value.status == 400
    assert info.value.retry_after_s is None


async def test_untranslatable_requests_fail_before_any_network_call(
    fake: FakeAnthropic, provider: AnthropicProvider
) -> None:
    request = chat([{"role": "user", "content": "Hi"}], tools=[{"type": "web_search"}])
    with pytest.raises(InvalidRequest):
        await provider.complete(request, "m", timeout_s=5)
    assert fake.seen == []
