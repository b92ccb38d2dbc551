"""Fire-and-forget work off the request path (trace-log writes, shared bandit updates).

The event loop keeps only a weak reference to a task: :class:`Background` holds each one
until it ends, then drops it and logs an exception the work let escape (the work itself
is expected to catch and log its own failures: a store that is down never fails a
request).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

_LOG = logging.getLogger("polyroute.background")


class Background:
    """The tasks one owner started and that have not ended yet."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._tasks: set[asyncio.Task[None]] = set()

    def spawn(self, work: Coroutine[Any, Any, None]) -> asyncio.Task[None] | None:
        """Run ``work`` as a task on the running loop; None (and ``work`` closed unrun)
        when no loop runs (the synchronous dry run)."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            work.close()
            return None
        task = loop.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._ended)
        return task

    def _ended(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None:
            _LOG.error("%s: a background task failed", self.name, exc_info=exc)

    async def drain(self, timeout_s: float) -> int:
        """Wait up to ``timeout_s`` for the tasks in flight (at shutdown, before the stores
        they write to close); cancel what is left.  Returns how many were cancelled."""
        pending = set(self._tasks)
        if not pending:
            return 0
        _, late = await asyncio.wait(pending, timeout=timeout_s)
        for task in late:
            task.cancel()
        if late:
            _LOG.warning("%s: %d background task(s) cut at shutdown", self.name, len(late))
        return len(late)

    def __len__(self) -> int:
        return len(self._tasks)


__all__ = ["Background"]
