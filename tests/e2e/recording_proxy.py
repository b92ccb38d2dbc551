"""A recording reverse proxy for the end-to-end tier: what did the upstream receive?

    python tests/e2e/recording_proxy.py --port P --upstream http://127.0.0.1:Q --log FILE

Forwards every request to ``--upstream`` unchanged (streams included) and appends
each request's JSON body, one per line, to ``--log``.  Tests read the log to check
what reached the model (a redacted prompt, how many calls a cache hit saved).
Listens on 127.0.0.1 only.  ``GET /healthz`` answers 200 without forwarding.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import aiohttp
from aiohttp import web

HOP = {"host", "content-length", "transfer-encoding", "connection"}


def make_app(upstream: str, log: Path) -> web.Application:
    session: dict[str, aiohttp.ClientSession] = {}

    async def on_startup(app: web.Application) -> None:
        session["s"] = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120))

    async def on_cleanup(app: web.Application) -> None:
        await session["s"].close()

    async def healthz(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def forward(request: web.Request) -> web.StreamResponse:
        body = await request.read()
        if body:
            with log.open("a", encoding="utf-8") as fh:
                fh.write(json.dumps(json.loads(body)) + "\n")
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP}
        async with session["s"].request(
            request.method, upstream + request.path_qs, data=body, headers=headers
        ) as resp:
            out = web.StreamResponse(status=resp.status)
            for k, v in resp.headers.items():
                if k.lower() not in HOP | {"content-encoding"}:
                    out.headers[k] = v
            await out.prepare(request)
            async for piece in resp.content.iter_any():
                await out.write(piece)
            await out.write_eof()
            return out

    app = web.Application()
    app.on_startup.append(on_startup)
    app.on_cleanup.append(on_cleanup)
    app.router.add_get("/healthz", healthz)
    app.router.add_route("*", "/{tail:.*}", forward)
    return app


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstream", required=True)
    parser.add_argument("--log", type=Path, required=True)
    args = parser.parse_args()
    web.run_app(make_app(args.upstream.rstrip("/"), args.log), host="127.0.0.1", port=args.port)


if __name__ == "__main__":
    main()
