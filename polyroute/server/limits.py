"""The concurrency limit: a pure ASGI wrapper, so a refused request costs almost nothing;
and :class:`Deadlines`, the slow-body cut without a timer per request.

Requests under ``/v1/`` count from arrival until their response ends (a stream
counts until its last byte).  Over ``server.max_concurrent_requests`` the answer
is **429** with ``Retry-After: 1`` and an OpenAI-style error; probes
(``/healthz``, ``/readyz``) are never refused.
"""

from __future__ import annotations

import asyncio
import logging
import resource
from typing import Any

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


class Deadlines:
    """Per-task deadlines for one kind of wait (a request body's arrival), enforced by one
    timer for all of them instead of one ``asyncio.timeout`` per request.

    ``asyncio.timeout`` schedules and cancels a timer handle per use: about 6 % of the
    gateway's own CPU per request when every request reads a body (measured with
    ``benchmarks/bench_app_inprocess.py`` under callgrind).  Here a request adds its task
    to a dict and removes it; a sweep runs every ``timeout_s / 4`` (at most once a second)
    while any is waiting and cancels those past their deadline, so a wait is cut between
    ``timeout_s`` and ``timeout_s`` plus one sweep interval.  The cancellation becomes
    :class:`TimeoutError` in :meth:`expired`, like ``asyncio.timeout`` (a cancellation from
    elsewhere still propagates as one)::

        token = deadlines.enter()
        try:
            ...  # awaits
        except asyncio.CancelledError:
            deadlines.expired(token)  # raises TimeoutError if the deadline cut it
            raise
        finally:
            deadlines.leave(token)
    """

    def __init__(self, timeout_s: float) -> None:
        self.timeout_s = timeout_s
        self.interval_s = min(1.0, timeout_s / 4)
        self._waiting: dict[asyncio.Task[Any], float] = {}
        self._cut: dict[asyncio.Task[Any], int] = {}  # task -> its cancelling() before the cut
        self._timer: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def enter(self) -> asyncio.Task[Any]:
        task = asyncio.current_task()
        if task is None:
            raise RuntimeError("Deadlines.enter() needs a running task")
        loop = task.get_loop()
        self._waiting[task] = loop.time() + self.timeout_s
        if self._timer is None or self._loop is not loop:  # (an app may outlive a loop)
            self._loop = loop
            self._timer = loop.call_later(self.interval_s, self._sweep)
        return task

    def leave(self, task: asyncio.Task[Any]) -> None:
        self._waiting.pop(task, None)
        self._cut.pop(task, None)

    def expired(self, task: asyncio.Task[Any]) -> None:
        """Called on ``CancelledError``: raise ``TimeoutError`` when the deadline caused it."""
        before = self._cut.pop(task, None)
        if before is not None and task.uncancel() <= before:
            raise TimeoutError

    def _sweep(self) -> None:
        self._timer = None
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            return
        if not self._waiting:
            return
        now = loop.time()
        for task, deadline in list(self._waiting.items()):
            if task.done() or task.get_loop() is not loop:
                self.leave(task)
            elif deadline <= now and task not in self._cut:
                self._cut[task] = task.cancelling()
                task.cancel()
        self._timer = loop.call_later(self.interval_s, self._sweep)
