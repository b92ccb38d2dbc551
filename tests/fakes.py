"""An in-process fake OpenAI-compatible upstream with scriptable faults, on a loopback port.

It runs an aiohttp server on its own event loop in a background thread, so it
works with sync tests (Starlette's TestClient) and async ones alike.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from starlette.testclient import TestClient


@dataclass
class Behaviour:
    """What the next requests get: ``mode`` is ok, status, hang, cut_stream, malformed, or
    echo (the answer is the last user message, streamed ``chunks`` characters a chunk)."""

    mode: str = "ok"
    status: int = 200
    retry_after: str | None = None
    delay_s: float = 0.0
    text: str = "hello from fake"
    chunks: int = 3
    headers: dict[str, str] = field(default_factory=dict)  # extra response headers
    error_message: str = "boom"


@dataclass
class FakeUpstream:
    name: str = "fake"
    behaviour: Behaviour = field(default_factory=Behaviour)
    queue: list[Behaviour] = field(default_factory=list)
    requests: list[dict[str, Any]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    port: int = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    paths: tuple[str, ...] = ("/v1/chat/completions", "/v1/completions", "/v1/embeddings")

    def next_behaviour(self) -> Behaviour:
        return self.queue.pop(0) if self.queue else self.behaviour

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.requests.append(body)
        self.headers.append(dict(request.headers))
        b = self.next_behaviour()
        if b.delay_s:
            await asyncio.sleep(b.delay_s)
        if b.mode == "status":
            headers = {"Retry-After": b.retry_after} if b.retry_after else {}
            return web.json_response(
                {"error": {"message": b.error_message}}, status=b.status, headers=headers
            )
        if b.mode == "hang":
            await asyncio.sleep(30)
        if b.mode == "malformed":
            return web.Response(text="{not json", content_type="application/json")
        completion = request.path.endswith("/completions") and "chat" not in request.path
        if b.mode == "echo":
            return await self._echo(request, body, b)
        if request.path.endswith("/embeddings"):
            texts = body["input"] if isinstance(body["input"], list) else [body["input"]]
            data = [
                {"object": "embedding", "index": i, "embedding": [0.5, float(len(str(t)))]}
                for i, t in enumerate(texts)
            ]
            usage = {"prompt_tokens": 2 * len(texts), "total_tokens": 2 * len(texts)}
            answer = {"object": "list", "data": data, "model": body["model"], "usage": usage}
            return web.json_response(answer)
        if body.get("stream"):
            return await self._stream(request, body, b)
        if completion:
            return web.json_response(
                {
                    "id": "cmpl-1",
                    "object": "text_completion",
                    "model": body["model"],
                    "choices": [{"index": 0, "text": b.text, "finish_reason": "stop"}],
                }
            )
        return web.json_response(
            {
                "id": "chatcmpl-1",
                "object": "chat.completion",
                "created": 1,
                "model": body["model"],
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": f"{b.text} ({self.name})"},
                        "finish_reason": "stop",
                    }
                ],
                "usage": {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7},
            },
            headers=b.headers,
        )

    async def _echo(
        self, request: web.Request, body: dict[str, Any], b: Behaviour
    ) -> web.StreamResponse:
        users = [m for m in body.get("messages", []) if m.get("role") == "user"]
        text = str(users[-1]["content"]) if users else str(body.get("prompt", ""))
        if not body.get("stream"):
            message = {"role": "assistant", "content": text}
            choice = {"index": 0, "message": message, "finish_reason": "stop"}
            answer = {"id": "e", "object": "chat.completion", "created": 1, "choices": [choice]}
            return web.json_response({**answer, "model": body["model"]})
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        pieces = [text[i : i + b.chunks] for i in range(0, len(text), b.chunks)]
        for i, piece in enumerate([*pieces, None]):
            last = piece is None
            delta = {} if last else {"content": piece}
            choice = {"index": 0, "delta": delta, "finish_reason": "stop" if last else None}
            chunk = {"id": f"e{i}", "object": "chat.completion.chunk", "model": body["model"]}
            await resp.write(
                b"data: " + json.dumps({**chunk, "choices": [choice]}).encode() + b"\n\n"
            )
        await resp.write(b"data: [DONE]\n\n")
        return resp

    async def _stream(
        self, request: web.Request, body: dict[str, Any], b: Behaviour
    ) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        for i in range(b.chunks):
            chunk = {
                "id": "c",
                "object": "chat.completion.chunk",
                "model": body["model"],
                "choices": [{"index": 0, "delta": {"content": f"tok{i} "}, "finish_reason": None}],
            }
            await resp.write(b"data: " + json.dumps(chunk).encode() + b"\n\n")
            if b.mode == "cut_stream" and i == 1:
                request.transport.close()  # type: ignore[union-attr]
                return resp
        options = body.get("stream_options") or {}
        if options.get("include_usage"):  # as OpenAI does: a last chunk with no choices
            usage = {
                "prompt_tokens": 11,
                "completion_tokens": b.chunks,
                "total_tokens": 11 + b.chunks,
            }
            last = {"id": "c", "object": "chat.completion.chunk", "model": body["model"]}
            await resp.write(
                b"data: " + json.dumps({**last, "choices": [], "usage": usage}).encode() + b"\n\n"
            )
        await resp.write(b"data: [DONE]\n\n")
        return resp


@dataclass
class FakeAnthropic(FakeUpstream):
    """Speaks the Anthropic Messages API (``/v1/messages``), plain and streaming."""

    paths: tuple[str, ...] = ("/v1/messages",)
    #: answer with a ``thinking`` block first (a block chat cannot express)
    thinking: bool = False

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.requests.append(body)
        self.headers.append(dict(request.headers))
        b = self.next_behaviour()
        if b.mode == "status":
            headers = {"Retry-After": b.retry_after} if b.retry_after else {}
            error = {"type": "error", "error": {"type": "overloaded_error", "message": "busy"}}
            return web.json_response(error, status=b.status, headers=headers)
        text = f"{b.text} ({self.name})"
        if not body.get("stream"):
            return web.json_response(
                {
                    "id": "msg_1",
                    "type": "message",
                    "role": "assistant",
                    "model": body["model"],
                    "content": [*self._thinking_blocks(), {"type": "text", "text": text}],
                    "stop_reason": "end_turn",
                    "usage": {"input_tokens": 5, "output_tokens": 4},
                }
            )
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        first = 1 if self.thinking else 0
        events: list[dict[str, Any]] = [
            {
                "type": "message_start",
                "message": {
                    "id": "msg_1",
                    "type": "message",
                    "role": "assistant",
                    "content": [],
                    "model": body["model"],
                    "stop_reason": None,
                    "stop_sequence": None,
                    "usage": {"input_tokens": 5, "output_tokens": 0},
                },
            },
            *self._thinking_events(),
            {
                "type": "content_block_start",
                "index": first,
                "content_block": {"type": "text", "text": ""},
            },
            *(
                {
                    "type": "content_block_delta",
                    "index": first,
                    "delta": {"type": "text_delta", "text": word + " "},
                }
                for word in text.split()
            ),
            {"type": "content_block_stop", "index": first},
            {
                "type": "message_delta",
                "delta": {"stop_reason": "end_turn"},
                "usage": {"output_tokens": 4},
            },
            {"type": "message_stop"},
        ]
        for event in events:
            data = json.dumps(event).encode()
            await resp.write(b"event: " + event["type"].encode() + b"\ndata: " + data + b"\n\n")
        return resp

    def _thinking_blocks(self) -> list[dict[str, Any]]:
        block = {"type": "thinking", "thinking": "Let me think.", "signature": "sig-1"}
        return [block] if self.thinking else []

    def _thinking_events(self) -> list[dict[str, Any]]:
        if not self.thinking:
            return []
        start = {"type": "thinking", "thinking": "", "signature": ""}
        return [
            {"type": "content_block_start", "index": 0, "content_block": start},
            {
                "type": "content_block_delta",
                "index": 0,
                "delta": {"type": "thinking_delta", "thinking": "Let me think."},
            },
            {
                "type": "content_block_delta",
                "index": 0,
                "delta": {"type": "signature_delta", "signature": "sig-1"},
            },
            {"type": "content_block_stop", "index": 0},
        ]


@contextmanager
def running(*upstreams: FakeUpstream) -> Iterator[tuple[FakeUpstream, ...]]:
    """Serve the fakes on ephemeral loopback ports for the duration of the block."""
    loop = asyncio.new_event_loop()
    runners: list[web.AppRunner] = []
    started = threading.Event()

    async def start() -> None:
        for up in upstreams:
            app = web.Application()
            for path in up.paths:
                app.router.add_post(path, up._handle)
            # no access log: the server thread may outlive a test's captured stream
            runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=0.2, access_log=None)
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            up.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
            runners.append(runner)
        started.set()

    def run() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(start())
        loop.run_forever()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    started.wait(30)
    try:
        yield upstreams
    finally:

        async def stop() -> None:
            for r in runners:
                await r.cleanup()

        asyncio.run_coroutine_threadsafe(stop(), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(30)
        loop.close()


@contextmanager
def app_clients(**client: Any) -> Iterator[Callable[[Any], TestClient]]:
    """A function opening a TestClient of the gateway app of an Engine (its lifespan
    entered); every client opened is closed when the block ends."""
    from polyroute.server import create_app

    with ExitStack() as stack:
        yield lambda engine: stack.enter_context(TestClient(create_app(engine), **client))


def gateway_config(small: str, large: str, **server: Any) -> dict[str, Any]:
    return {
        "models": {
            "small": {"base_url": small, "input_price_per_mtok": 0.1, "output_price_per_mtok": 0.1},
            "large": {
                "base_url": large,
                "model": "my-large-model",
                "api_key": "sk-secret-large-key",
                "timeout_s": 2,
                "input_price_per_mtok": 3.0,
                "output_price_per_mtok": 15.0,
            },
        },
        "signals": {"math": {"type": "keyword", "any": ["prove", "integral", "theorem"]}},
        "decisions": [
            {"name": "hard-math", "priority": 10, "when": "math", "models": ["large", "small"]},
            {"name": "default", "when": True, "models": ["small", "large"], "select": "cheapest"},
        ],
        "server": {"backoff_base_s": 0.001, "backoff_max_s": 0.01, "deadline_s": 5, **server},
    }
