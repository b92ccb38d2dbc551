"""A fast local OpenAI-compatible upstream for benchmarks: fixed answers, no model.

    python benchmarks/fake_upstream.py --port 8101 [--delay-s 0.05]

Raw ASGI on uvicorn (uvloop + httptools), loopback only.  Serves
``POST /v1/chat/completions`` (JSON, or SSE when ``"stream": true``),
``POST /v1/completions``, ``GET /v1/models`` and ``GET /healthz``.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import orjson
import uvicorn

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

CHAT = orjson.dumps(
    {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": 1700000000,
        "model": "fake",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "Hello from the fake upstream."},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 12, "completion_tokens": 7, "total_tokens": 19},
    }
)
COMPLETION = orjson.dumps(
    {
        "id": "cmpl-fake",
        "object": "text_completion",
        "created": 1700000000,
        "model": "fake",
        "choices": [{"index": 0, "text": " Paris.", "finish_reason": "stop", "logprobs": None}],
        "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7},
    }
)
MODELS = orjson.dumps(
    {"object": "list", "data": [{"id": "fake", "object": "model", "owned_by": "bench"}]}
)


def _chunk(delta: dict[str, str], finish: str | None) -> bytes:
    body = {
        "id": "chatcmpl-fake",
        "object": "chat.completion.chunk",
        "created": 1700000000,
        "model": "fake",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    return b"data: " + orjson.dumps(body) + b"\n\n"


SSE = b"".join(
    [
        _chunk({"role": "assistant", "content": ""}, None),
        *(_chunk({"content": word}, None) for word in ("Hello", " from", " the", " fake.")),
        _chunk({}, "stop"),
        b"data: [DONE]\n\n",
    ]
)
SSE_PARTS = [part + b"\n\n" for part in SSE.split(b"\n\n") if part]

JSON_HEADERS = [(b"content-type", b"application/json")]
SSE_HEADERS = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")]


def make_app(delay_s: float = 0.0) -> Callable[[Scope, Receive, Send], Awaitable[None]]:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        body = b""
        more = True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        if delay_s:
            await asyncio.sleep(delay_s)
        path = scope["path"]
        if path == "/v1/chat/completions":
            if b'"stream"' in body and orjson.loads(body).get("stream") is True:
                await _stream(send)
                return
            await _respond(send, 200, CHAT)
        elif path == "/v1/completions":
            await _respond(send, 200, COMPLETION)
        elif path == "/v1/models":
            await _respond(send, 200, MODELS)
        elif path == "/healthz":
            await _respond(send, 200, b'{"ok":true}')
        else:
            await _respond(send, 404, b'{"error":{"message":"not found","type":"not_found"}}')

    return app


async def _respond(send: Send, status: int, body: bytes) -> None:
    await send({"type": "http.response.start", "status": status, "headers": JSON_HEADERS})
    await send({"type": "http.response.body", "body": body})


async def _stream(send: Send) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": SSE_HEADERS})
    for part in SSE_PARTS:
        await send({"type": "http.response.body", "body": part, "more_body": True})
    await send({"type": "http.response.body", "body": b""})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8101)
    parser.add_argument("--delay-s", type=float, default=0.0, help="sleep before each answer")
    args = parser.parse_args()
    if args.host not in {"127.0.0.1", "localhost", "::1"}:
        parser.error("the fake upstream listens on loopback only")
    uvicorn.run(
        make_app(args.delay_s),
        host=args.host,
        port=args.port,
        loop="uvloop",
        http="httptools",
        log_level="warning",
        access_log=False,
        lifespan="on",
    )


if __name__ == "__main__":
    main()
