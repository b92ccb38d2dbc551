"""polyroute's own CPU per request: the whole ASGI app in-process, no network.

    python benchmarks/bench_app_inprocess.py [--n 30000]
    PYTHONPATH=/path/to/other/checkout python benchmarks/bench_app_inprocess.py   # compare
    python benchmarks/bench_app_inprocess.py --instructions   # callgrind: steady when shared

Builds the gateway app (a keyword rule, two models, ``cheapest``), replaces each
backend's provider with one that answers at once, and calls the app with synthetic
ASGI messages for one chat request at a time: server, engine, access log line (to
memory) and metrics, without sockets, uvicorn or aiohttp, whose costs swamp small
differences on a shared machine.  Prints CPU microseconds per request
(``time.process_time``).
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import io
import logging
import re
import subprocess
import sys
import tempfile
import time
from typing import Any

import orjson

from polyroute import Engine, parse_config
from polyroute.server import create_app
from polyroute.server.logs import configure_logging

CONFIG: dict[str, Any] = {
    "models": {
        "small": {"base_url": "http://127.0.0.1:9/v1", "input_price_per_mtok": 0.1},
        "large": {"base_url": "http://127.0.0.1:9/v1"},
    },
    "signals": {"math": {"type": "keyword", "any": ["prove"]}},
    "decisions": [
        {"name": "m", "priority": 10, "when": "math", "models": ["large", "small"]},
        {"name": "d", "models": ["small", "large"], "select": "cheapest"},
    ],
}
ANSWER = {
    "id": "x",
    "object": "chat.completion",
    "choices": [
        {"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}
    ],
    "usage": {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7},
}
BODY = orjson.dumps({"model": "auto", "messages": [{"role": "user", "content": "hello there"}]})


class InstantProvider:
    async def complete(self, request: Any, model: str, timeout_s: float) -> dict[str, Any]:
        return dict(ANSWER)

    async def aclose(self) -> None:
        pass


def scope() -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/v1/chat/completions",
        "raw_path": b"/v1/chat/completions",
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", b"x"),
            (b"content-type", b"application/json"),
            (b"content-length", str(len(BODY)).encode()),
        ],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 2),
        "state": {},
    }


async def call(app: Any) -> None:
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": BODY, "more_body": False}
        await asyncio.sleep(3600)
        return {"type": "http.disconnect"}

    out: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        out.append(message)

    await app(scope(), receive, send)
    if out[0]["status"] != 200:
        raise SystemExit(f"unexpected answer: {out}")


async def run(n: int) -> float:
    engine = Engine(parse_config(CONFIG))
    for backend in engine.backends.values():
        backend.provider = InstantProvider()  # type: ignore[assignment]
    app = create_app(engine)
    events: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    replies: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    await events.put({"type": "lifespan.startup"})
    life = asyncio.create_task(
        app({"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}, events.get, replies.put)
    )
    await replies.get()
    for _ in range(n // 10):
        await call(app)
    started = time.process_time()
    for _ in range(n):
        await call(app)
    per_request = (time.process_time() - started) / n * 1e6
    await events.put({"type": "lifespan.shutdown"})
    await replies.get()
    await life
    return per_request


def instructions(n: int) -> int:
    """Instructions executed by this script for ``n`` requests, counted by callgrind."""
    with tempfile.TemporaryDirectory() as tmp:
        out = subprocess.run(
            [
                "valgrind",
                "--tool=callgrind",
                f"--callgrind-out-file={tmp}/cg.out",
                sys.executable,
                __file__,
                "--n",
                str(n),
            ],
            capture_output=True,
            text=True,
            check=True,
        )
    found = re.search(r"Collected : (\d+)", out.stderr)
    if found is None:
        raise SystemExit(f"callgrind printed no total:\n{out.stderr[-2000:]}")
    return int(found.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=30000, help="requests timed")
    parser.add_argument(
        "--instructions",
        action="store_true",
        help="count instructions per request under valgrind's callgrind instead (steady on "
        "a shared machine: the difference of two runs, 500 and 2,500 requests, 1.1x warm-up "
        "included, over the 2,200 requests between them)",
    )
    args = parser.parse_args()
    if args.instructions:
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            small, large = pool.map(instructions, (500, 2500))
        print(f"{(large - small) / 2200:,.0f} instructions per request (callgrind)")
        return
    configure_logging("info")  # as `polyroute serve` does, into memory instead of stderr
    handler = logging.getLogger().handlers[0]
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(io.StringIO())
    print(f"{asyncio.run(run(args.n)):.1f} us CPU per request (ASGI app in-process, no network)")


if __name__ == "__main__":
    main()
