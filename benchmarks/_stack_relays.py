"""The relays of ``bench_stack.py``: apps, upstream clients and servers, run as subprocesses.

Runs inside the stack venv as ``<venv python> bench_stack.py relay --server ...
--client ... --app ...`` (granian imports ``_stack_relays:app_from_env`` itself, in
its worker).  Nothing at module level imports a third-party package, so this
mode needs only the venv: every such import is local on purpose.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
CHAT = "/v1/chat/completions"
UPSTREAM_MODEL = "small"

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]


# --------------------------------------------------------------------------- upstream clients


class AiohttpUpstream:
    """aiohttp, configured like ``polyroute.backends.openai.HttpProvider`` (or the default pool)."""

    def __init__(self, url: str, gateway_connector: bool) -> None:
        import aiohttp

        if gateway_connector:
            connector = aiohttp.TCPConnector(limit=0, ttl_dns_cache=300, keepalive_timeout=30)
        else:
            connector = aiohttp.TCPConnector()  # limit=100, keepalive_timeout=15
        self.url = url
        self.session = aiohttp.ClientSession(
            connector=connector,
            headers={"content-type": "application/json"},
            skip_auto_headers=("User-Agent",),
            timeout=aiohttp.ClientTimeout(total=30),
        )

    async def post(self, payload: bytes) -> tuple[int, bytes]:
        async with self.session.post(self.url, data=payload) as resp:
            return resp.status, await resp.read()

    async def aclose(self) -> None:
        await self.session.close()


class HttpxUpstream:
    """httpx.AsyncClient over HTTP/1.1; the pool keeps every one of 32+ connections alive.

    (httpx's default ``max_keepalive_connections=20`` would close and reopen
    connections at 32 concurrent: an unfair handicap, so it is raised here.)
    """

    def __init__(self, url: str) -> None:
        import httpx

        limits = httpx.Limits(
            max_connections=None, max_keepalive_connections=256, keepalive_expiry=30
        )
        transport = httpx.AsyncHTTPTransport(http1=True, http2=False, limits=limits, retries=0)
        self.url = url
        self.client = httpx.AsyncClient(
            transport=transport,
            headers={"content-type": "application/json"},
            timeout=30,
            trust_env=False,
        )

    async def post(self, payload: bytes) -> tuple[int, bytes]:
        resp = await self.client.post(self.url, content=payload)
        return resp.status_code, resp.content

    async def aclose(self) -> None:
        await self.client.aclose()


def make_upstream(kind: str, url: str) -> AiohttpUpstream | HttpxUpstream:
    if kind == "aiohttp":
        return AiohttpUpstream(url, gateway_connector=True)
    if kind == "aiohttp-default":
        return AiohttpUpstream(url, gateway_connector=False)
    if kind == "httpx":
        return HttpxUpstream(url)
    raise ValueError(f"unknown upstream client {kind!r}")


class Relay:
    """The relay's state: its upstream client, created lazily inside the serving loop."""

    def __init__(self, kind: str, upstream: str) -> None:
        self.kind = kind
        self.url = upstream.rstrip("/") + CHAT
        self._client: AiohttpUpstream | HttpxUpstream | None = None

    @property
    def client(self) -> AiohttpUpstream | HttpxUpstream:
        if self._client is None:
            self._client = make_upstream(self.kind, self.url)
        return self._client

    async def forward(self, body: bytes) -> tuple[int, bytes]:
        import orjson

        try:
            data = orjson.loads(body)
            if not isinstance(data, dict):
                raise TypeError("not an object")
        except (orjson.JSONDecodeError, TypeError):
            return 400, b'{"error":{"message":"body is not a JSON object","type":"invalid"}}'
        data["model"] = UPSTREAM_MODEL
        try:
            return await self.client.post(orjson.dumps(data))
        except Exception as exc:
            message = orjson.dumps({"error": {"message": repr(exc), "type": "upstream_error"}})
            return 502, message

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None


# --------------------------------------------------------------------------- apps


def raw_relay(kind: str, upstream: str) -> App:
    """The relay as a raw ASGI app: no framework at all."""
    import gc

    relay = Relay(kind, upstream)

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    gc.collect()
                    gc.freeze()  # as the gateway does after start-up
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await relay.aclose()
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        if scope["method"] != "POST":
            await _answer(send, 200, b'{"ok":true}')
            return
        chunks = []
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        if scope["path"] != CHAT:
            await _answer(send, 404, b'{"error":{"message":"not found","type":"not_found"}}')
            return
        status, body = await relay.forward(b"".join(chunks))
        await _answer(send, status, body)

    return app


async def _answer(send: Send, status: int, body: bytes) -> None:
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def starlette_relay(kind: str, upstream: str) -> App:
    """The same relay as a Starlette route, the way the gateway is written."""
    import gc
    from collections.abc import AsyncIterator

    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    relay = Relay(kind, upstream)

    async def chat(request: Request) -> Response:
        status, body = await relay.forward(await request.body())
        return Response(body, status_code=status, media_type="application/json")

    async def healthz(request: Request) -> Response:
        return Response(b'{"ok":true}', media_type="application/json")

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        gc.collect()
        gc.freeze()
        try:
            yield
        finally:
            await relay.aclose()

    routes = [Route(CHAT, chat, methods=["POST"]), Route("/healthz", healthz, methods=["GET"])]
    return Starlette(routes=routes, lifespan=lifespan)


def polyroute_app(config: str, log_level: str) -> App:
    """The gateway's own app, built as ``polyroute serve`` builds it (minus uvicorn)."""
    from polyroute.engine import Engine
    from polyroute.server import create_app
    from polyroute.server.logs import configure_logging

    configure_logging(log_level)
    return create_app(Engine.from_file(config))


def app_from_env() -> App:
    """Factory for granian, which imports its target in the worker: settings come by env."""
    kind, app = os.environ["STACK_CLIENT"], os.environ["STACK_APP"]
    if app == "polyroute":
        return polyroute_app(os.environ["STACK_CONFIG"], os.environ["STACK_LOG_LEVEL"])
    build = starlette_relay if app == "starlette" else raw_relay
    return build(kind, os.environ["STACK_UPSTREAM"])


# --------------------------------------------------------------------------- servers


def serve(server: str, port: int) -> None:
    """Serve ``app_from_env()`` on 127.0.0.1:port with one worker of ``server``."""
    host = "127.0.0.1"
    if server.partition("-")[0] == "granian":  # granian[-rust][-st|-mt]
        _serve_granian(server, host, port)
        return
    app = app_from_env()
    if server in ("uvicorn-httptools", "uvicorn-h11"):
        _serve_uvicorn(app, server, host, port)
        return
    if server == "hypercorn":
        _serve_hypercorn(app, host, port)
        return
    raise SystemExit(f"unknown server {server!r}")


def _serve_granian(server: str, host: str, port: int) -> None:
    from granian import Granian
    from granian.constants import HTTPModes, Interfaces, Loops, RuntimeModes, TaskImpl

    opts = set(server.split("-")[1:])
    mode = next((RuntimeModes(m) for m in ("st", "mt") if m in opts), RuntimeModes.auto)
    Granian(
        f"{Path(__file__).stem}:app_from_env", factory=True, working_dir=HERE,
        address=host, port=port, interface=Interfaces.ASGI, workers=1, loop=Loops.uvloop,
        http=HTTPModes.http1, websockets=False, log_enabled=False, runtime_mode=mode,
        task_impl=TaskImpl.rust if "rust" in opts else TaskImpl.asyncio,
    ).serve()  # fmt: skip


def _serve_uvicorn(app: App, server: str, host: str, port: int) -> None:
    import uvicorn

    http = "httptools" if server == "uvicorn-httptools" else "h11"
    uvicorn.run(
        app, host=host, port=port, loop="uvloop", http=http, access_log=False,
        log_level="warning", lifespan="on", timeout_graceful_shutdown=5,
    )  # fmt: skip


def _serve_hypercorn(app: App, host: str, port: int) -> None:
    import uvloop
    from hypercorn.asyncio import serve as hypercorn_serve
    from hypercorn.config import Config

    config = Config()
    config.bind = [f"{host}:{port}"]
    config.accesslog = None
    config.loglevel = "WARNING"
    config.graceful_timeout = 5

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await hypercorn_serve(app, config, shutdown_trigger=stop.wait)  # type: ignore[arg-type]

    uvloop.run(main())


def relay_main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="bench_stack.py relay")
    parser.add_argument("--server", required=True)
    parser.add_argument("--client", default="aiohttp")
    parser.add_argument("--app", default="raw", choices=["raw", "starlette", "polyroute"])
    parser.add_argument("--upstream", default="")
    parser.add_argument("--config", default="")
    parser.add_argument("--log-level", default="info")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    os.environ.update(STACK_CLIENT=args.client, STACK_APP=args.app, STACK_UPSTREAM=args.upstream,
                      STACK_CONFIG=args.config, STACK_LOG_LEVEL=args.log_level)  # fmt: skip
    serve(args.server, args.port)
