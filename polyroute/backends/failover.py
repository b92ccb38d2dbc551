"""Retries, failover and the circuit breaker around provider calls.

Semantics (documented in RELIABILITY.md):

* Candidates are tried in the selector's order.  A backend whose circuit is
  open is skipped (trace outcome ``circuit_open``).
* Each attempt gets ``min(timeout_s, time left before the request deadline)``
  (a stream's covers its first chunk too); with under ``MIN_ATTEMPT_S`` left,
  the deadline counts as run out.
* Connect errors, timeouts, 429, 5xx and protocol errors (malformed JSON, a
  wrong content type, a cut stream before its first chunk) are retried on the
  same backend up to ``server.retries`` times with exponential backoff and
  jitter, honouring ``Retry-After`` up to ``retry_after_max_s`` (a longer
  ``Retry-After`` moves straight to the next candidate); then the next
  candidate is tried.  Every failure counts towards the backend's breaker;
  once the breaker opens, the backend is left at once.
* 400, 413 and 422 from an upstream are the client's fault: returned as they
  are, no retry, no failover.  Other 4xx (401, 403, 404...) and 508 (the upstream
  is a polyroute gateway that saw its own request: a config loop) mean a
  misconfigured backend: no retry, fail over.
* When every candidate failed: 504 if the deadline ran out or every attempt
  timed out, 503 if no backend could be reached, else 502.
* Streams fail over only before the first chunk; once a chunk was sent, a
  failure ends the stream with an explicit error event (see ``server.streaming``).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import TypeVar

import orjson

from polyroute.backends.backend import Backend
from polyroute.config import ServerConfig
from polyroute.errors import (
    UpstreamError,
    UpstreamStatus,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from polyroute.redact import SecretRedactor
from polyroute.types import JSON, Attempt, Request, Trace, UpstreamStream

T = TypeVar("T")
CLIENT_FAULTS = frozenset({400, 413, 422})
LOOP_DETECTED = 508  # the upstream is a gateway that saw its own request: a config loop
# An attempt is not started with less time than this before the deadline: it could
# not succeed, and its certain timeout would be charged to a backend never contacted.
MIN_ATTEMPT_S = 0.05
# what of an upstream's own error message a client may see (after secrets are scrubbed)
MAX_REASON_CHARS = 500


def outcome_of(exc: UpstreamError) -> str:
    if isinstance(exc, UpstreamStatus):
        return f"status_{exc.upstream_status}"
    if isinstance(exc, UpstreamTimeout):
        return "timeout"
    if isinstance(exc, UpstreamUnavailable):
        return "connect_error"
    return "protocol_error"


class Dispatcher:
    def __init__(
        self,
        server: ServerConfig,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rng: Callable[[], float] = random.random,
        redactor: SecretRedactor | None = None,
    ) -> None:
        self.server = server
        self._sleep = sleep
        self._rng = rng
        self._redactor = redactor or SecretRedactor(())

    def backoff_s(self, retry: int, retry_after_s: float | None) -> float:
        s = self.server
        delay: float = min(s.backoff_max_s, s.backoff_base_s * 2.0**retry) * (0.5 + self._rng() / 2)
        return max(delay, retry_after_s or 0.0)

    async def complete(
        self,
        candidates: Sequence[Backend],
        request: Request,
        trace: Trace,
        deadline: float | None = None,
    ) -> JSON:
        """The first candidate's answer that succeeds (retries, failover, breakers), within
        ``server.deadline_s``, or by ``deadline`` (a ``time.monotonic`` value: a plan's
        calls share one)."""

        async def call(b: Backend, timeout_s: float) -> JSON:
            return await b.provider.complete(request, b.upstream_model, timeout_s)

        _, result = await self._run(candidates, trace, call, deadline=deadline)
        return result

    async def embed(self, candidates: Sequence[Backend], body: JSON, trace: Trace) -> JSON:
        """``POST /embeddings`` with the same retries, failover and breakers."""

        async def call(b: Backend, timeout_s: float) -> JSON:
            embed = getattr(b.provider, "embed", None)
            if embed is None:
                raise UpstreamError(f"{b.name}: its provider has no embeddings endpoint")
            result: JSON = await embed(body, b.upstream_model, timeout_s)
            return result

        _, result = await self._run(candidates, trace, call)
        return result

    async def open_stream(
        self, candidates: Sequence[Backend], request: Request, trace: Trace
    ) -> tuple[Backend, JSON, LiveStream]:
        """Open a stream and read its first chunk (failover happens up to here)."""

        async def call(
            b: Backend, timeout_s: float
        ) -> tuple[UpstreamStream, AsyncIterator[JSON], JSON]:
            # one budget for the whole attempt: opening the stream *and* its first chunk
            until = asyncio.get_running_loop().time() + timeout_s
            stream = await b.provider.open_stream(
                request, b.upstream_model, timeout_s, self.server.stream_idle_timeout_s
            )
            it = aiter(stream)
            try:
                async with asyncio.timeout_at(until):
                    first = await anext(it)
            except StopAsyncIteration:
                await stream.aclose()
                raise UpstreamError(f"{b.name}: stream ended without any chunk") from None
            except TimeoutError:
                await stream.aclose()
                raise UpstreamTimeout(
                    f"{b.name}: no first stream chunk within {timeout_s:.3g} s"
                ) from None
            except BaseException:
                await stream.aclose()
                raise
            return stream, it, first

        b, (stream, it, first) = await self._run(candidates, trace, call, keep_in_flight=True)
        return b, first, LiveStream(b, stream, it, trace)

    async def _run(
        self,
        candidates: Sequence[Backend],
        trace: Trace,
        call: Callable[[Backend, float], Awaitable[T]],
        keep_in_flight: bool = False,
        deadline: float | None = None,
    ) -> tuple[Backend, T]:
        if deadline is None:
            deadline = time.monotonic() + self.server.deadline_s
        errors: list[UpstreamError] = []
        for b in candidates:
            if not b.breaker.acquire():
                trace.attempts.append(Attempt(b.name, "circuit_open", 0.0))
                errors.append(UpstreamUnavailable(f"{b.name}: circuit open"))
                continue
            for retry in range(self.server.retries + 1):
                left = deadline - time.monotonic()
                if left < MIN_ATTEMPT_S:
                    raise self._final(errors, trace, deadline_hit=True)
                started = time.perf_counter()
                b.stats.in_flight += 1
                b.stats.requests += 1
                try:
                    result = await call(b, min(b.timeout_s, left))
                except UpstreamError as exc:
                    b.stats.in_flight -= 1
                    ms = (time.perf_counter() - started) * 1000
                    status = exc.upstream_status if isinstance(exc, UpstreamStatus) else None
                    trace.attempts.append(
                        Attempt(b.name, outcome_of(exc), ms, status, retry, exc.message)
                    )
                    if status in CLIENT_FAULTS and isinstance(exc, UpstreamStatus):
                        b.breaker.record_success()  # the upstream is healthy; the request is not
                        trace.outcome = "rejected_by_upstream"
                        reason = upstream_reason(exc, self._redactor)
                        exc.message = f"{b.name} rejected the request: {reason}"
                        raise
                    errors.append(exc)
                    b.breaker.record_failure()
                    b.stats.failures += 1
                    if not self._retry_same(b, exc, retry, deadline):
                        break
                    await self._sleep(self.backoff_s(retry, _retry_after(exc)))
                    continue
                except BaseException:  # cancelled, or a provider bug: free a half-open probe
                    b.stats.in_flight -= 1
                    b.breaker.probing = False
                    raise
                ms = (time.perf_counter() - started) * 1000
                if not keep_in_flight:
                    b.stats.in_flight -= 1
                b.breaker.record_success()
                b.stats.observe_latency(ms)
                trace.attempts.append(Attempt(b.name, "ok", ms, 200, retry))
                trace.upstream_ms += ms
                trace.model = b.name
                trace.outcome = _success_outcome(trace)
                return b, result
        raise self._final(errors, trace, deadline_hit=False)

    def _retry_same(self, b: Backend, exc: UpstreamError, retry: int, deadline: float) -> bool:
        if retry >= self.server.retries or not b.breaker.acquire():
            return False
        if isinstance(exc, UpstreamStatus) and (
            (exc.upstream_status < 500 and exc.upstream_status != 429)
            or exc.upstream_status == LOOP_DETECTED
        ):
            return False  # a request or config fault: retrying the same backend cannot help
        wait = _retry_after(exc)
        if wait is not None and wait > self.server.retry_after_max_s:
            return False
        return time.monotonic() + self.backoff_s(retry, wait) < deadline

    def _final(
        self, errors: list[UpstreamError], trace: Trace, deadline_hit: bool
    ) -> UpstreamError:
        tried = describe_attempts(trace)
        if deadline_hit or (errors and all(isinstance(e, UpstreamTimeout) for e in errors)):
            trace.outcome = "timeout"
            return UpstreamTimeout(f"all candidates failed before the deadline: {tried}")
        if errors and all(isinstance(e, UpstreamUnavailable) for e in errors):
            trace.outcome = "unavailable"
            return UpstreamUnavailable(f"no candidate could be reached: {tried}")
        trace.outcome = "failed"
        return UpstreamError(f"all candidates failed: {tried}")


class LiveStream:
    """The rest of an upstream stream after its first chunk.

    Records the stream's end in the breaker, stats and trace.  ``aclose`` is
    idempotent and safe before iteration started, so the server can always
    release the upstream connection and the in-flight count, whatever happened.
    """

    def __init__(
        self, b: Backend, stream: UpstreamStream, it: AsyncIterator[JSON], trace: Trace
    ) -> None:
        self.backend = b
        self._stream = stream
        self._it = it
        self._trace = trace
        # what the dispatcher concluded (ok / ok_after_failover); the engine marks the
        # trace "streaming" meanwhile, and a complete stream restores it
        self._complete_outcome = trace.outcome if trace.outcome.startswith("ok") else "ok"
        self._started = time.perf_counter()
        self._closed = False

    def __aiter__(self) -> LiveStream:
        return self

    async def __anext__(self) -> JSON:
        try:
            return await anext(self._it)
        except StopAsyncIteration:
            self._trace.outcome = self._complete_outcome
            raise
        except UpstreamError as exc:
            b = self.backend
            b.breaker.record_failure()
            b.stats.failures += 1
            self._trace.outcome = "stream_cut"
            ms = (time.perf_counter() - self._started) * 1000
            self._trace.attempts.append(Attempt(b.name, "stream_cut", ms, detail=exc.message))
            raise

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        self.backend.stats.in_flight -= 1
        aclose = getattr(self._it, "aclose", None)
        try:
            if aclose is not None:
                await aclose()
        finally:
            await self._stream.aclose()


def _success_outcome(trace: Trace) -> str:
    """``ok`` at once, ``ok_after_retry`` on the same backend, else ``ok_after_failover``."""
    if len(trace.attempts) == 1:
        return "ok"
    if all(a.model == trace.model for a in trace.attempts):
        return "ok_after_retry"
    return "ok_after_failover"


def upstream_reason(exc: UpstreamStatus, redactor: SecretRedactor) -> str:
    """The upstream's own ``error.message`` (OpenAI or Anthropic shape): secrets scrubbed
    from the whole message first, then cut to ``MAX_REASON_CHARS``; else its status."""
    with contextlib.suppress(ValueError):
        body = orjson.loads(exc.body)
        error = body.get("error") if isinstance(body, dict) else None
        message = error.get("message") if isinstance(error, dict) else None
        if isinstance(message, str) and message:
            reason = redactor.scrub_cut(message, MAX_REASON_CHARS)
            return f"{reason} (upstream status {exc.upstream_status})"
    return f"upstream status {exc.upstream_status}"


def describe_attempts(trace: Trace) -> str:
    """``small: status_503 x3; large: timeout`` — backend names and outcomes, no URLs or bodies.

    Client-facing messages use this; the full details stay in the logged trace.
    """
    counts: dict[tuple[str, str], int] = {}
    for a in trace.attempts:
        counts[a.model, a.outcome] = counts.get((a.model, a.outcome), 0) + 1
    parts = [f"{m}: {o}" + (f" x{n}" if n > 1 else "") for (m, o), n in counts.items()]
    return "; ".join(parts) or "no candidate"


def _retry_after(exc: UpstreamError) -> float | None:
    return exc.retry_after_s if isinstance(exc, UpstreamStatus) else None


__all__ = ["Dispatcher", "LiveStream", "describe_attempts", "outcome_of"]
