"""HTTP server x upstream client: is uvicorn + httptools + aiohttp the fastest sensible stack?

    flock /tmp/polyroute-bench.lock python benchmarks/bench_stack.py           # ~12 minutes
    flock /tmp/polyroute-bench.lock python benchmarks/bench_stack.py --quick   # ~40 seconds

The smallest honest relay -- receive a POST of an OpenAI chat body, parse it
with orjson, replace ``model``, forward it to ``benchmarks/fake_upstream.py``
over a pooled keep-alive connection, return the upstream's status and JSON body
-- is run on every combination of

- server (one worker each): uvicorn + httptools + uvloop (the gateway's),
  uvicorn + h11 + uvloop, granian (ASGI interface, uvloop; as shipped, and with
  ``task_impl=rust, runtime_mode=st``, its best setting in a trial), hypercorn (uvloop);
- upstream client: aiohttp as the gateway configures it (``TCPConnector(limit=0)``),
  aiohttp with the default connector (``limit=100``), httpx.AsyncClient (HTTP/1.1,
  pooled transport with room for every concurrent connection);

as raw ASGI, plus the same relay written as a Starlette route (the gateway's
framework) on uvicorn and granian, plus the real gateway: ``python -m polyroute
serve`` (the issue's config, one JSON access-log line per request) and the same
Starlette app (``polyroute.server.create_app``) served by granian, unchanged.

The candidates live in a throw-away venv, ``~/.cache/polyroute/bench/stack-venv``
(created on first use with ``--system-site-packages`` so that uvicorn, aiohttp,
httpx, orjson and uvloop are the very versions the gateway runs with; granian and
hypercorn are pip-installed into it), and every relay runs as a subprocess of
that venv's python, in its own session, on 127.0.0.1, stopped by process group
(SIGTERM, then SIGKILL).

For every stack and round, one aiohttp client (this process, uvloop) measures

a. sequential latency on one keep-alive connection, interleaved request by
   request with the same request sent straight to the upstream: added latency =
   percentile via the relay - the same percentile direct (samples pooled over
   rounds), and the relay's CPU time per request, one request at a time;
b. a saturated closed loop, 32 concurrent, a bounded number of requests:
   throughput, latency, errors, and the CPU time the relay's process group, the
   upstream and the client each spent per request (from /proc: less sensitive to
   the machine's other load than throughput).

Stacks are restarted every round and the order is rotated between rounds (default
5 rounds); the table shows medians over rounds and the throughput's range.  It is printed and
written, with the command and machine facts, to ``benchmarks/RESULTS_stack.md``.
Every phase is bounded in count and time.

The relay itself is also this file: ``<venv python> bench_stack.py relay ...``.
Nothing at module level imports a third-party package, so that mode needs only
the venv.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path
from statistics import median
from typing import Any

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "RESULTS_stack.md"
VENV = Path.home() / ".cache" / "polyroute" / "bench" / "stack-venv"
VENV_PACKAGES = [
    "granian", "hypercorn", "uvicorn[standard]", "httpx", "aiohttp", "orjson", "uvloop",
    "starlette",
]  # fmt: skip
VERSIONS_OF = ["uvicorn", "httptools", "h11", "uvloop", "granian", "hypercorn", "aiohttp",
               "httpx", "httpcore", "orjson", "starlette"]  # fmt: skip
CHAT = "/v1/chat/completions"
UPSTREAM_MODEL = "small"
CONCURRENCY = 32
PHASE_TIME_CAP_S = 120.0
INSTALL_TIMEOUT_S = 900.0

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]


# =========================================================================== the relay
# Runs inside the venv (``bench_stack.py relay ...``); imports are local on purpose.


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


def serve(server: str, port: int) -> None:
    """Serve ``app_from_env()`` on 127.0.0.1:port with one worker of ``server``."""
    host = "127.0.0.1"
    if server.partition("-")[0] == "granian":  # granian[-rust][-st|-mt]
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
        return
    app = app_from_env()
    if server in ("uvicorn-httptools", "uvicorn-h11"):
        import uvicorn

        http = "httptools" if server == "uvicorn-httptools" else "h11"
        uvicorn.run(
            app, host=host, port=port, loop="uvloop", http=http, access_log=False,
            log_level="warning", lifespan="on", timeout_graceful_shutdown=5,
        )  # fmt: skip
        return
    if server == "hypercorn":
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
        return
    raise SystemExit(f"unknown server {server!r}")


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


# =========================================================================== the driver


@dataclass(frozen=True)
class Stack:
    key: str
    server: str  # uvicorn-httptools | uvicorn-h11 | granian | hypercorn | polyroute-serve
    client: str  # aiohttp | aiohttp-default | httpx
    app: str  # raw | starlette | polyroute
    label: str
    needs: tuple[str, ...] = ()  # venv modules; the stack is skipped without them


CURRENT = "uvicorn-httptools/aiohttp/raw"
SERVER_LABEL = {
    "uvicorn-httptools": "uvicorn + httptools",
    "uvicorn-h11": "uvicorn + h11",
    "granian": "granian (ASGI)",
    "granian-rust-st": "granian (ASGI, `task_impl=rust`, `runtime_mode=st`)",
    "hypercorn": "hypercorn",
}
CLIENT_LABEL = {
    "aiohttp": "aiohttp, `limit=0` (gateway's)",
    "aiohttp-default": "aiohttp, default pool",
    "httpx": "httpx, HTTP/1.1 pool",
}


def _relay(server: str, client: str, app: str = "raw") -> Stack:
    needs = tuple(m for m in (server.partition("-")[0], client.partition("-")[0]) if m)
    if app == "starlette":
        needs += ("starlette",)
    label = f"{SERVER_LABEL[server]} · {CLIENT_LABEL[client]} · {app}"
    return Stack(f"{server}/{client}/{app}", server, client, app, label, needs)


STACKS = [
    _relay("uvicorn-httptools", "aiohttp"),
    _relay("uvicorn-httptools", "aiohttp-default"),
    _relay("uvicorn-httptools", "httpx"),
    _relay("uvicorn-h11", "aiohttp"),
    _relay("uvicorn-h11", "httpx"),
    _relay("granian", "aiohttp"),
    _relay("granian-rust-st", "aiohttp"),
    _relay("granian", "httpx"),
    _relay("hypercorn", "aiohttp"),
    _relay("hypercorn", "httpx"),
    _relay("uvicorn-httptools", "aiohttp", "starlette"),
    _relay("granian", "aiohttp", "starlette"),
    Stack("polyroute-serve", "polyroute-serve", "aiohttp", "polyroute",
          "**polyroute serve** (uvicorn + httptools · aiohttp · Starlette + routing + access log)"),
    Stack("granian/aiohttp/polyroute", "granian", "aiohttp", "polyroute",
          "polyroute's app, unchanged, on granian (ASGI) · aiohttp · + access log",
          ("granian",)),
]  # fmt: skip


# --------------------------------------------------------------------------- the venv


def venv_python() -> Path:
    return VENV / "bin" / "python"


def venv_modules(python: Path) -> dict[str, str]:
    """Importable modules in the venv -> their distribution versions ('' if not importable)."""
    code = (
        "import importlib, importlib.metadata as m, json\n"
        f"names = {VERSIONS_OF!r}\n"
        "out = {}\n"
        "for n in names:\n"
        "    try:\n"
        "        importlib.import_module(n)\n"
        "        out[n] = m.version(n)\n"
        "    except Exception:\n"
        "        out[n] = ''\n"
        "print(json.dumps(out))\n"
    )
    proc = subprocess.run([str(python), "-c", code], capture_output=True, text=True,
                          timeout=120, check=False)  # fmt: skip
    if proc.returncode:
        return {}
    import json

    return dict(json.loads(proc.stdout))


def ensure_venv() -> dict[str, str]:
    """Create (or reuse) the throw-away venv; returns the versions found in it."""
    python = venv_python()
    versions = venv_modules(python) if python.exists() else {}
    if versions and all(versions.get(m) for m in ("granian", "hypercorn", "httpx", "uvloop")):
        return versions
    if not python.exists():
        print(f"creating {VENV} ...", flush=True)
        VENV.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(VENV)],
                       check=True, timeout=300)  # fmt: skip
    print(f"pip install {' '.join(VENV_PACKAGES)} (into {VENV}) ...", flush=True)
    try:
        proc = subprocess.run([str(python), "-m", "pip", "install", "-q", *VENV_PACKAGES],
                              timeout=INSTALL_TIMEOUT_S, check=False)  # fmt: skip
        if proc.returncode:
            print("pip install failed; stacks whose packages are missing are skipped", flush=True)
    except subprocess.TimeoutExpired:
        print("pip install timed out; stacks whose packages are missing are skipped", flush=True)
    return venv_modules(python)


# --------------------------------------------------------------------------- measurement


def group_cpu_s(pgid: int) -> float:
    """User + system CPU seconds of every live process in process group ``pgid``."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            raw = Path(entry.path, "stat").read_bytes()
        except OSError:
            continue
        fields = raw[raw.rfind(b")") + 2 :].split()
        if int(fields[2]) == pgid:  # field 5, pgrp
            total += int(fields[11]) + int(fields[12])  # fields 14, 15: utime, stime
    return total / ticks


def _client_session(limit: int) -> Any:
    import aiohttp

    connector = aiohttp.TCPConnector(limit=limit, keepalive_timeout=60)
    return aiohttp.ClientSession(
        connector=connector, timeout=aiohttp.ClientTimeout(total=30), trust_env=False
    )


async def _one(session: Any, url: str, body: bytes) -> float:
    t0 = time.perf_counter()
    async with session.post(url, data=body, headers={"content-type": "application/json"}) as r:
        await r.read()
        if r.status != 200:
            raise RuntimeError(f"{url}: HTTP {r.status}")
    return (time.perf_counter() - t0) * 1000


async def sequential(direct: str, relay: str, n: int, pgid: int) -> dict[str, Any]:
    """``n`` pairs, direct and via the relay alternately first, one keep-alive connection each.

    Also returns the relay's CPU time per request over the pairs (one request at a
    time: no batching of several requests into one wake-up, unlike saturation).
    """
    import aiohttp
    from _harness import chat_body

    direct_ms: list[float] = []
    relay_ms: list[float] = []
    errors = 0
    async with _client_session(1) as s_direct, _client_session(1) as s_relay:
        for i in range(50):  # warm-up: connections, lazy imports, the relay's upstream pool
            await _one(s_direct, direct, chat_body(i))
            await _one(s_relay, relay, chat_body(i))
        deadline = time.monotonic() + PHASE_TIME_CAP_S
        cpu0 = group_cpu_s(pgid)
        for i in range(n):
            if time.monotonic() > deadline:
                break
            body = chat_body(i)
            pairs = [(s_direct, direct, direct_ms), (s_relay, relay, relay_ms)]
            for session, url, out in pairs if i % 2 == 0 else pairs[::-1]:
                try:
                    out.append(await _one(session, url, body))
                except (TimeoutError, aiohttp.ClientError, RuntimeError):
                    errors += 1
        cpu_us = (group_cpu_s(pgid) - cpu0) * 1e6 / max(1, len(relay_ms))
    return {
        "direct_ms": direct_ms,
        "relay_ms": relay_ms,
        "seq_errors": errors,
        "seq_cpu_us": cpu_us,
    }


async def saturated(url: str, n: int, pgids: dict[str, int]) -> dict[str, Any]:
    """``n`` requests from 32 workers on one pool; CPU per request of each process group."""
    import aiohttp
    from _harness import chat_body

    latencies: list[float] = []
    errors = 0
    counter = iter(range(n))
    deadline = time.monotonic() + PHASE_TIME_CAP_S

    async def worker(session: Any) -> None:
        nonlocal errors
        for i in counter:
            if time.monotonic() > deadline:
                return
            try:
                latencies.append(await _one(session, url, chat_body(i)))
            except (TimeoutError, aiohttp.ClientError, RuntimeError):
                errors += 1

    async with _client_session(CONCURRENCY) as session:
        await asyncio.gather(*(_one(session, url, chat_body(i)) for i in range(CONCURRENCY)))
        for i in range(CONCURRENCY * 4):  # warm-up, all connections open
            await _one(session, url, chat_body(i))
        cpu0 = {name: group_cpu_s(pgid) for name, pgid in pgids.items()}
        client0 = time.process_time()
        t0 = time.perf_counter()
        await asyncio.gather(*(worker(session) for _ in range(CONCURRENCY)))
        elapsed = time.perf_counter() - t0
        client_s = time.process_time() - client0
        cpu = {name: group_cpu_s(pgid) - cpu0[name] for name, pgid in pgids.items()}
    done = max(1, len(latencies) + errors)
    return {
        "n": len(latencies),
        "errors": errors,
        "rps": len(latencies) / elapsed,
        "latencies": latencies,
        "cpu_us": {**{k: v * 1e6 / done for k, v in cpu.items()}, "client": client_s * 1e6 / done},
    }


@dataclass
class Tally:
    """One stack's measurements over every round."""

    stack: Stack
    direct_ms: list[float] = field(default_factory=list)
    relay_ms: list[float] = field(default_factory=list)
    rps: list[float] = field(default_factory=list)
    sat_ms: list[float] = field(default_factory=list)
    cpu_us: list[dict[str, float]] = field(default_factory=list)
    seq_cpu_us: list[float] = field(default_factory=list)
    errors: int = 0
    requests: int = 0
    failure: str = ""


def start_stack(stack: Stack, upstream: str, config: Path, logs: Path, tag: str) -> Any:
    from _harness import LOOPBACK, free_port, start_server

    port = free_port()
    if stack.server == "polyroute-serve":
        argv = [sys.executable, "-m", "polyroute", "serve", "--config", str(config),
                "--host", LOOPBACK, "--port", str(port), "--log-level", "info"]  # fmt: skip
        return start_server(f"{tag}-polyroute", argv, port, "/readyz", logs)
    argv = [str(venv_python()), str(Path(__file__).resolve()), "relay", "--server", stack.server,
            "--client", stack.client, "--app", stack.app, "--upstream", upstream,
            "--config", str(config), "--log-level", "info", "--port", str(port)]  # fmt: skip
    ready = "/readyz" if stack.app == "polyroute" else "/healthz"
    name = f"{tag}-{stack.key.replace('/', '_')}"
    return start_server(name, argv, port, ready, logs, timeout_s=60.0)


async def measure(
    stack: Stack, server: Any, upstream: Any, args: argparse.Namespace
) -> dict[str, Any]:
    seq = await sequential(upstream.url + CHAT, server.url + CHAT, args.sequential, server.pgid)
    pgids = {"relay": server.pgid, "upstream": upstream.pgid}
    sat = await saturated(server.url + CHAT, args.burst, pgids)
    return {**seq, **sat}


def run_all(args: argparse.Namespace, stacks: list[Stack]) -> tuple[list[Tally], Tally, int]:
    import uvloop
    import yaml
    from _harness import bench_config, free_port, start_server

    tallies = {s.key: Tally(s) for s in stacks}
    direct = Tally(Stack("direct", "", "", "", "upstream direct (no relay): the ceiling"))
    deadline = time.monotonic() + args.max_minutes * 60
    rounds_done = 0
    with tempfile.TemporaryDirectory(prefix="polyroute-stack-") as tmp:
        logs = Path(tmp)
        up_port = free_port()
        up_argv = [sys.executable, str(HERE / "fake_upstream.py"), "--port", str(up_port)]
        upstream = start_server("fake-upstream", up_argv, up_port, "/healthz", logs)
        try:
            config = logs / "bench.yaml"
            config.write_text(yaml.safe_dump(bench_config(upstream.url), sort_keys=False))
            for rnd in range(args.rounds):
                if time.monotonic() > deadline:
                    print(f"time budget ({args.max_minutes} min) spent: stopping", flush=True)
                    break
                shift = rnd % len(stacks)
                order = stacks[shift:] + stacks[:shift]
                ref = uvloop.run(saturated(upstream.url + CHAT, args.burst,
                                           {"upstream": upstream.pgid}))  # fmt: skip
                _add_saturated(direct, ref)
                print(f"round {rnd + 1}/{args.rounds}: direct {ref['rps']:.0f} req/s", flush=True)
                for stack in order:
                    if time.monotonic() > deadline:
                        break
                    _run_one(tallies[stack.key], stack, upstream, config, logs, args, rnd)
                rounds_done += 1
            _check_access_logs(logs, tallies)
        finally:
            upstream.stop()
    return list(tallies.values()), direct, rounds_done


def _run_one(tally: Tally, stack: Stack, upstream: Any, config: Path, logs: Path,
             args: argparse.Namespace, rnd: int) -> None:  # fmt: skip
    import uvloop

    if tally.failure:
        return
    try:
        server = start_stack(stack, upstream.url, config, logs, f"r{rnd}")
    except SystemExit as exc:  # did not start: keep the log's tail as the reason
        tally.failure = str(exc).splitlines()[-1][:200] if str(exc) else "did not start"
        print(f"  {stack.key}: FAILED to start: {exc}", flush=True)
        return
    try:
        result = uvloop.run(measure(stack, server, upstream, args))
    except Exception as exc:
        tally.failure = f"{type(exc).__name__}: {exc}"[:200]
        print(f"  {stack.key}: FAILED: {tally.failure}", flush=True)
        return
    finally:
        server.stop()
    tally.direct_ms += result["direct_ms"]
    tally.relay_ms += result["relay_ms"]
    tally.errors += result["seq_errors"]
    tally.seq_cpu_us.append(result["seq_cpu_us"])
    _add_saturated(tally, result)
    from _harness import pct

    add50 = pct(result["relay_ms"], 50) - pct(result["direct_ms"], 50)
    print(f"  {stack.key:38} +{add50:.3f} ms p50   {result['rps']:6.0f} req/s   relay CPU/req "
          f"{result['seq_cpu_us']:.0f} / {result['cpu_us']['relay']:.0f} µs   errors "
          f"{result['errors'] + result['seq_errors']}", flush=True)  # fmt: skip


def _add_saturated(tally: Tally, result: dict[str, Any]) -> None:
    tally.rps.append(result["rps"])
    tally.sat_ms += result["latencies"]
    tally.cpu_us.append(result["cpu_us"])
    tally.errors += result["errors"]
    tally.requests += result["n"]


def _check_access_logs(logs: Path, tallies: dict[str, Tally]) -> None:
    """Both polyroute rows must have written their access log (same work on both servers)."""
    for key in ("polyroute-serve", "granian/aiohttp/polyroute"):
        tally = tallies.get(key)
        if tally is None or tally.failure or not tally.requests:
            continue
        pattern = "*polyroute.log" if key == "polyroute-serve" else "*granian_aiohttp_polyroute.log"
        lines = sum(p.read_text(errors="replace").count("\n") for p in logs.glob(pattern))
        if lines < tally.requests:
            tally.failure = f"access log has {lines} lines for {tally.requests} requests"


# --------------------------------------------------------------------------- report


def report(tallies: list[Tally], direct: Tally, rounds: int) -> str:
    from _harness import pct

    def cpu(t: Tally, who: str) -> float:
        return median(c[who] for c in t.cpu_us)

    def rel(value: float, ref: float) -> str:
        return f"{100 * (value / ref - 1):+.0f} %"

    base = next((t for t in tallies if t.stack.key == CURRENT and t.rps), None)
    base_rps = median(base.rps) if base else float("nan")
    base_seq = median(base.seq_cpu_us) if base else float("nan")
    base_sat = cpu(base, "relay") if base else float("nan")
    lines = [
        "| stack: server · upstream client · app | sequential added p50 / p99 (ms) "
        "| saturated req/s, median (range) | vs current | saturated p50 / p99 (ms) "
        "| server CPU µs/req, one at a time / saturated (vs current) "
        "| upstream / client CPU µs/req, saturated | errors |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
        f"| {direct.stack.label} | — | {median(direct.rps):,.0f} ({min(direct.rps):,.0f}-"
        f"{max(direct.rps):,.0f}) | — | {pct(direct.sat_ms, 50):.2f} / "
        f"{pct(direct.sat_ms, 99):.2f} | — | {cpu(direct, 'upstream'):.0f} / "
        f"{cpu(direct, 'client'):.0f} | {direct.errors} |",
    ]
    for t in tallies:
        name = f"**{t.stack.label}** (current)" if t.stack.key == CURRENT else t.stack.label
        if t.failure or not t.rps:
            lines.append(f"| {name} | failed: {t.failure or 'not run'} | | | | | | |")
            continue
        add50 = pct(t.relay_ms, 50) - pct(t.direct_ms, 50)
        add99 = pct(t.relay_ms, 99) - pct(t.direct_ms, 99)
        rps, seq_cpu, sat_cpu = median(t.rps), median(t.seq_cpu_us), cpu(t, "relay")
        lines.append(
            f"| {name} | {add50:.3f} / {add99:.3f} | {rps:,.0f} ({min(t.rps):,.0f}-"
            f"{max(t.rps):,.0f}) | {rel(rps, base_rps)} | {pct(t.sat_ms, 50):.2f} / "
            f"{pct(t.sat_ms, 99):.2f} | {seq_cpu:.0f} / {sat_cpu:.0f} ({rel(seq_cpu, base_seq)} "
            f"/ {rel(sat_cpu, base_sat)}) | {cpu(t, 'upstream'):.0f} / {cpu(t, 'client'):.0f} "
            f"| {t.errors} |"
        )
    n_seq = max((len(t.relay_ms) for t in tallies), default=0)
    n_sat = max((t.requests for t in tallies), default=0)
    notes = (
        f"{rounds} round(s); per stack up to {n_seq} sequential pairs (pooled over rounds) and "
        f"{n_sat} saturated requests at {CONCURRENCY} concurrent (medians over rounds).  "
        "'vs current' compares with the first relay row (the gateway's server and client, no "
        "framework).  Server CPU is the user + system time of the relay's whole process "
        "group (granian: its Rust threads too) over a phase divided by the phase's "
        "requests: one request at a time (the sequential phase, which also counts what a "
        "server burns while idle during the interleaved direct requests) and saturated.  It is "
        "less sensitive to the shared machine's load than req/s.  Saturated latency is "
        "queueing (32 in flight / throughput), not per-request cost.  Errors count both phases."
    )
    return "\n".join(lines) + "\n\n" + notes + "\n"


def write_results(table: str, argv: list[str], versions: dict[str, str], took_s: float) -> None:
    from _harness import machine_facts

    command = "flock /tmp/polyroute-bench.lock python benchmarks/bench_stack.py"
    command += "" if not argv else " " + " ".join(argv)
    packages = ", ".join(f"{k} {v}" for k, v in versions.items() if v)
    text = "\n".join([
        "# Server x upstream-client benchmark (the gateway's relay path)", "",
        "Produced by:", "", "```", command, "```", "",
        f"Run time: {took_s / 60:.1f} minutes.", "",
        "A minimal relay (parse the chat body with orjson, set `model`, POST it to",
        "`benchmarks/fake_upstream.py` over a pooled keep-alive connection, return the",
        "upstream's JSON) on each server x upstream client, one worker each, plus the real",
        "gateway.  Client: one aiohttp process (uvloop) on the same 2 cores, keep-alive.",
        "Added latency = percentile via the stack - the same percentile direct to the",
        "upstream, interleaved request by request.  The machine is shared with other work:",
        "throughput varies by about ±30 % run to run; the server CPU per request is the",
        "steadier comparison.", "",
        table, "",
        f"Packages (venv `{VENV}`, with the system site-packages): {packages}.", "",
        "Machine:", "", *(f"- {fact}" for fact in machine_facts()), "",
    ])  # fmt: skip
    RESULTS.write_text(text)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "relay":
        relay_main(sys.argv[2:])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="rounds over every stack")
    parser.add_argument("--sequential", type=int, default=1500, help="sequential pairs per round")
    parser.add_argument("--burst", type=int, default=5000, help="saturated requests per round")
    parser.add_argument("--only", default="", help="comma-separated substrings of stack keys")
    parser.add_argument("--max-minutes", type=float, default=30.0, help="overall time budget")
    parser.add_argument("--quick", action="store_true", help="1 round, few requests (smoke)")
    parser.add_argument("--no-write", action="store_true", help=f"do not write {RESULTS.name}")
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.sequential, args.burst = 1, 300, 1500
    started = time.monotonic()
    versions = ensure_venv()
    stacks = [s for s in STACKS if not args.only or any(k in s.key for k in args.only.split(","))]
    skipped = [s for s in stacks if not all(versions.get(m) for m in s.needs)]
    for s in skipped:
        print(f"skipped (not in the venv: {', '.join(s.needs)}): {s.key}", flush=True)
    stacks = [s for s in stacks if s not in skipped]
    tallies, direct, rounds = run_all(args, stacks)
    table = report(tallies, direct, rounds)
    took = time.monotonic() - started
    print(table)
    print(f"took {took / 60:.1f} minutes")
    if not args.no_write:
        write_results(table, sys.argv[1:], versions, took)
        print(f"written to {RESULTS.relative_to(HERE.parent)}")


if __name__ == "__main__":
    main()
