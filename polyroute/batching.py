"""Micro-batching: concurrent requests share one ``predict(prompts)`` call in a worker thread.

Used by the learned selector (``predict`` = the router's quality predictions) and by the
engine's encoder signals (``predict`` = the encoder: one thread hop for the prompts of
every request in flight; on one ONNX Runtime thread a batched MiniLM call saves about a
fifth of the CPU per short prompt and little on long ones, because the work is
compute-bound).

A request's prompt joins the pending queue and the request awaits its own row.
When the batcher has a free worker, it waits ``window_s`` for company, then
takes up to ``max_batch`` pending prompts and runs ``predict`` on them in a
worker thread (its ``executor``, else asyncio's default pool); each waiter gets its row.  While
``workers`` batches run, new prompts queue up and form the next batches as soon
as one finishes, so under load batches grow by themselves and alone a request
waits only the window.  The event loop never runs ``predict``.

Failure is per batch and never a hang: an exception in ``predict`` (or a row
count that does not match) fails every request of that batch with a
:class:`~polyroute.errors.RoutingError` naming the cause (HTTP 503).  A waiter
that is cancelled (its client went away) is skipped or its row dropped; the
other requests of its batch are unaffected.

State is bound to the running event loop: a batcher used from a new loop
(tests, a restarted server) starts afresh there.
"""

from __future__ import annotations

import asyncio
import os
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from typing import Any

import numpy as np
import numpy.typing as npt

from polyroute.embed import Encoder
from polyroute.errors import RoutingError
from polyroute.types import Request

Row = npt.NDArray[np.float64]
MAX_ENCODER_BATCH = 32
Predict = Callable[[list[str]], Sequence[Row] | npt.NDArray[Any]]


class MicroBatcher:
    """Gathers concurrent :meth:`predict` calls into batched calls of ``predict_batch``."""

    def __init__(
        self,
        predict_batch: Predict,
        *,
        max_batch: int = 32,
        window_s: float = 0.0,
        workers: int = 1,
        name: str = "predict",
        dtype: type[np.floating[Any]] = np.float64,
        executor: Executor | None = None,
    ) -> None:
        if max_batch < 1 or workers < 1 or window_s < 0:
            raise ValueError("max_batch and workers must be >= 1 and window_s >= 0")
        self.predict_batch = predict_batch
        self.max_batch = max_batch
        self.window_s = window_s
        self.workers = workers
        self.name = name
        self.dtype = dtype
        #: where ``predict_batch`` runs (None: asyncio's default thread pool)
        self.executor = executor
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pending: deque[tuple[str, asyncio.Future[Row]]] = deque()
        self._running = 0
        self._timer: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def predict(self, prompt: str) -> Row:
        """This prompt's row of ``predict_batch``, computed in a batch with its neighbours."""
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            self._loop, self._pending, self._running = loop, deque(), 0
            self._timer, self._tasks = None, set()
        future: asyncio.Future[Row] = loop.create_future()
        self._pending.append((prompt, future))
        if self._running < self.workers and self._timer is None:
            self._timer = loop.call_later(self.window_s, self._start)
        return await future

    def _start(self) -> None:
        """Start batches on the free workers (after the window, or when a batch ends)."""
        if self._timer is not None:
            self._timer.cancel()  # a no-op when the timer itself calls
            self._timer = None
        loop = self._loop
        assert loop is not None
        while self._pending and self._running < self.workers:
            batch: list[tuple[str, asyncio.Future[Row]]] = []
            while self._pending and len(batch) < self.max_batch:
                prompt, future = self._pending.popleft()
                if not future.done():  # a cancelled waiter needs no row
                    batch.append((prompt, future))
            if batch:
                self._running += 1
                task = loop.create_task(self._run(loop, batch))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

    async def _run(
        self, loop: asyncio.AbstractEventLoop, batch: list[tuple[str, asyncio.Future[Row]]]
    ) -> None:
        cause: BaseException | None = None
        try:
            prompts = [p for p, _ in batch]
            rows = await loop.run_in_executor(self.executor, self.predict_batch, prompts)
            if len(rows) != len(batch):
                raise ValueError(f"{len(rows)} rows for {len(batch)} prompts")
            for (_, future), row in zip(batch, rows, strict=True):
                if not future.done():
                    future.set_result(np.asarray(row, dtype=self.dtype))
        except BaseException as exc:  # cancelled too (shutdown): no waiter may hang
            cause = exc
            if not isinstance(exc, Exception):
                raise
        finally:
            for _, future in batch:
                if cause is not None and not future.done():
                    error = RoutingError(f"{self.name} failed: {type(cause).__name__}: {cause}")
                    error.__cause__ = cause
                    future.set_exception(error)
            if self._loop is loop:
                self._running -= 1
                if self._pending and not loop.is_closed():
                    self._start()


class EncoderBatchers:
    """One :class:`MicroBatcher` per request-path encoder (by id), made on first use.

    The engine's signal prefetch and the plugins that embed a prompt (the semantic cache)
    share it, so concurrent requests' prompts meet in one queue per encoder, and a vector
    lands in the request's feature cache (``request.memo``) for every other reader.
    Every encoder's batches run in one pool of its own, of ``threads`` threads
    (``server.encoder_threads``; default: a thread per usable core): however many encoders
    are loaded, they never take more threads than that, and never the threads of
    asyncio's default pool (which routes huge requests, runs the signals' heads, the
    SQLite store and the PII and output guards).  Each encoder may run as many batches at
    once as there are threads: a batched MiniLM call saves only about a fifth of the CPU
    per short prompt (about 3.6 -> 2.8 ms for CLINC queries in batches of 32 on one
    thread; little on 600-character prompts), so batches side by side are what pays
    (BENCHMARKS.md, eighth session).  Batches hold up to 32 prompts, or one for an
    encoder whose class sets ``one_prompt_per_run = True`` (the fine-tuned graph: a
    prompt's vector must not depend on the prompts beside it)."""

    def __init__(self, threads: int | None = None) -> None:
        self.threads = threads or usable_cores()
        self._by_id: dict[str, MicroBatcher] = {}
        self._pool: ThreadPoolExecutor | None = None

    def get(self, encoder: Encoder) -> MicroBatcher:
        batcher = self._by_id.get(encoder.id)
        if batcher is None:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.threads, "polyroute-encoder")
            one = getattr(encoder, "one_prompt_per_run", False) is True
            batcher = self._by_id[encoder.id] = MicroBatcher(
                encoder.encode,
                max_batch=1 if one else MAX_ENCODER_BATCH,
                workers=self.threads,
                name=f"encoder {encoder.id}",
                dtype=np.float32,
                executor=self._pool,
            )
        return batcher

    def close(self) -> None:
        """Let the pool's threads end (batches running finish; the engine is closing)."""
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
            self._by_id.clear()

    async def embed(self, request: Request, encoder: Encoder, text: str) -> npt.NDArray[Any]:
        """``encoder``'s ``[1 x dim]`` vector of ``text``, once per request: from the
        request's feature cache, else batched with the requests in flight."""
        memo, key = feature_cache(request), embed_key(encoder, text)
        vector: npt.NDArray[Any] | None = memo.get(key)
        if vector is None:
            row = await self.get(encoder).predict(text)
            vector = memo[key] = row.reshape(1, -1)
        return vector


def feature_cache(request: Request) -> dict[Any, Any]:
    """The request's feature cache (``request.memo``), made on first use."""
    if request.memo is None:
        request.memo = {}
    return request.memo


def embed_key(encoder: Encoder, text: str) -> tuple[str, str, str]:
    """Where ``encoder``'s vector of ``text`` lies in a request's feature cache (every
    reader and writer of embeddings uses this key)."""
    return ("embed", encoder.id, text)


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # no affinity on this platform
        return max(1, os.cpu_count() or 1)
