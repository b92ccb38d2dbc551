"""The concurrency limit: a pure ASGI wrapper, so a refused request costs almost nothing.

Requests under ``/v1/`` count from arrival until their response ends (a stream
counts until its last byte).  Over ``server.max_concurrent_requests`` the answer
is **429** with ``Retry-After: 1`` and an OpenAI-style error; probes
(``/healthz``, ``/readyz``) are never refused.
"""

from __future__ import annotations

import logging
import resource

import orjson
from starlette.types import ASGIApp, Receive, Scope, Send

from polyroute.errors import Overloaded
from polyroute.server.errors import error_body

log = logging.getLogger("polyroute.access")


class ConcurrencyLimit:
    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit
        self.in_flight = 0
        self.refused = 0
        exc = Overloaded(
            f"the gateway is serving its limit of {limit} concurrent requests; retry shortly"
        )
        self._body = error_body(exc.message, exc.type, exc.code)
        self._headers = [
            (b"content-type", b"application/json"),
            (b"retry-after", b"1"),
            (b"content-length", str(len(self._body)).encode()),
        ]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/v1/"):
            await self.app(scope, receive, send)
            return
        if self.in_flight >= self.limit:
            self.refused += 1
            await send({"type": "http.response.start", "status": 429, "headers": self._headers})
            await send({"type": "http.response.body", "body": self._body})
            if log.isEnabledFor(logging.INFO):
                line = {"event": "request", "status": 429, "path": scope["path"]}
                log.info(orjson.dumps({**line, "outcome": "refused:concurrency_limit"}).decode())
            return
        self.in_flight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_flight -= 1


def ensure_file_limit(max_concurrent: int) -> str | None:
    """Each request in flight holds two sockets (client and upstream): raise the soft
    open-file limit towards the hard one if it is short; return a warning if still short."""
    need = 2 * max_concurrent + 256
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= need:
        return None
    target = need if hard == resource.RLIM_INFINITY else min(need, hard)
    if target > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    if soft >= need:
        return None
    return (
        f"server.max_concurrent_requests is {max_concurrent}, which needs about {need} open "
        f"files, but the limit is {soft}: raise `ulimit -n` or lower the setting"
    )
