"""The trace log: what learning from traffic needs, per served request, and its feedback.

With a ``feedback:`` section in the config, every model call (chat, completions,
messages, responses) leaves one record in a store (SQLite by default: zero setup;
Redis when several replicas run), written after the answer, off the request path::

    {"trace_id", "ts", "decision", "candidates", "model", "plan", "cost_usd",
     "cost_source", "upstream_ms", "outcome", "finish_reason", "signals",
     "implicit": {"upstream_failed", "truncated", "retry_of", "retried"},
     "feedback": null | {"score", "label", "comment", "ts", "count"},
     "prompt": (only with store_prompts: true)}

- ``POST /v1/feedback`` (:meth:`TraceLog.rate`) attaches ``score`` in [0, 1] (or ``label``
  good = 1 / bad = 0) to a record; it may come minutes later and more than once (the
  last counts; ``count`` says how many).  Records are keyed by the tenant (the gateway
  key's name, hashed) and the trace id: another tenant's, an expired or an unknown id is
  the same 404.
- Implicit signals: the upstream failed on the way (a failed attempt), the answer was
  cut by ``max_tokens`` (``finish_reason: length``), the client sent the same
  conversation again within ``retry_window_s`` (the new record's ``retry_of``, and the
  earlier one's ``retried``: a retry says the earlier answer did not serve).
- The prompt text is never stored unless ``store_prompts: true``.
- A store that is down never fails a request: the write is logged and dropped.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import orjson

from polyroute.errors import FieldError, ModelNotFound
from polyroute.types import JSON, Request, Store, Trace, signals_json

_LOG = logging.getLogger("polyroute.feedback")
LABELS = {"good": 1.0, "bad": 0.0}
MAX_COMMENT_CHARS = 2000
_FIELDS = frozenset({"trace_id", "score", "label", "comment"})


class TraceNotFound(ModelNotFound):
    """No trace with this id for this tenant (unknown, expired, or another tenant's)."""

    code = "trace_not_found"


@dataclass(frozen=True, slots=True)
class Rating:
    trace_id: str
    score: float
    label: str | None
    comment: str | None


def parse_rating(body: JSON) -> Rating:
    """A ``POST /v1/feedback`` body; a FieldError (400) names the field that is wrong."""
    unknown = sorted(set(body) - _FIELDS)
    if unknown:
        raise FieldError(unknown[0], "unknown field; expected trace_id, score or label, comment")
    trace_id = body.get("trace_id")
    if not isinstance(trace_id, str) or not 0 < len(trace_id) <= 128:
        raise FieldError("trace_id", "expected the x-polyroute-trace-id of a served request")
    score, label = body.get("score"), body.get("label")
    if (score is None) == (label is None):
        raise FieldError("score", "expected exactly one of score (0 to 1) or label (good|bad)")
    if label is not None:
        if not isinstance(label, str) or label not in LABELS:
            raise FieldError("label", "expected good or bad")
        score = LABELS[label]
    if isinstance(score, bool) or not isinstance(score, int | float) or not math.isfinite(score):
        raise FieldError("score", "expected a number from 0 to 1")
    if not 0.0 <= score <= 1.0:
        raise FieldError("score", "expected a number from 0 to 1")
    comment = body.get("comment")
    if comment is not None and (not isinstance(comment, str) or len(comment) > MAX_COMMENT_CHARS):
        raise FieldError("comment", f"expected a string of at most {MAX_COMMENT_CHARS} characters")
    return Rating(trace_id, float(score), label, comment)


def _tenant(client: str) -> str:
    return hashlib.sha256(client.encode()).hexdigest()[:16]


def _conversation(request: Request) -> str:
    return hashlib.sha256(orjson.dumps(request.messages, option=orjson.OPT_SORT_KEYS)).hexdigest()


class TraceLog:
    def __init__(
        self,
        store: Store,
        ttl_s: float,
        store_prompts: bool = False,
        retry_window_s: float = 600.0,
        prefix: str = "fb:",
    ) -> None:
        self.store = store
        self.ttl_s = ttl_s
        self.store_prompts = store_prompts
        self.retry_window_s = retry_window_s
        self.prefix = prefix

    def _key(self, client: str, trace_id: str) -> str:
        return f"{self.prefix}{_tenant(client)}:{trace_id}"

    async def record(self, trace: Trace, request: Request | None) -> None:
        """Write one served request's record (and mark a retried earlier one); a store
        error is logged, never raised."""
        try:
            await self._record(trace, request)
        except Exception as exc:  # a store that is down never fails a request
            _LOG.warning("trace log: could not record %s (%s)", trace.trace_id, exc)

    async def _record(self, trace: Trace, request: Request | None) -> None:
        implicit: JSON = {
            "upstream_failed": any(a.outcome != "ok" for a in trace.attempts),
            "truncated": trace.finish_reason == "length",
            "retry_of": None,
            "retried": False,
        }
        if request is not None and request.messages:
            conv_key = f"{self.prefix}conv:{_tenant(trace.client)}:{_conversation(request)}"
            earlier = await self.store.get(conv_key)
            await self.store.set(conv_key, trace.trace_id.encode(), self.retry_window_s)
            if earlier is not None and earlier.decode() != trace.trace_id:
                implicit["retry_of"] = earlier.decode()
                await self._update(trace.client, earlier.decode(), _mark_retried)
        record: JSON = {
            "trace_id": trace.trace_id,
            "ts": time.time(),
            "decision": trace.decision,
            "candidates": trace.candidates,
            "model": trace.model,
            "plan": trace.plan or "single",
            "cost_usd": trace.cost_usd,
            "cost_source": trace.cost_source,
            "upstream_ms": round(trace.upstream_ms, 3),
            "outcome": trace.outcome,
            "finish_reason": trace.finish_reason,
            "signals": signals_json(trace.signals),
            "implicit": implicit,
            "feedback": None,
        }
        if self.store_prompts and request is not None:
            record["prompt"] = request.prompt
        await self.store.set(
            self._key(trace.client, trace.trace_id), orjson.dumps(record), self.ttl_s
        )

    async def get(self, client: str, trace_id: str) -> JSON:
        raw = await self.store.get(self._key(client, trace_id))
        if raw is None:
            raise TraceNotFound(
                f"trace {trace_id[:128]!r} not found (never served to this key, or expired)"
            )
        found: JSON = orjson.loads(raw)
        return found

    async def rate(self, client: str, rating: Rating) -> JSON:
        """Attach ``rating`` to the tenant's trace (the last rating counts)."""

        def rated(record: JSON) -> None:
            before = record.get("feedback") or {}
            record["feedback"] = {
                "score": rating.score,
                "label": rating.label,
                "comment": rating.comment,
                "ts": time.time(),
                "count": int(before.get("count", 0)) + 1,
            }

        return await self._update(client, rating.trace_id, rated, missing_ok=False)

    async def _update(
        self,
        client: str,
        trace_id: str,
        change: Callable[[JSON], None],
        missing_ok: bool = True,
    ) -> JSON:
        try:
            record = await self.get(client, trace_id)
        except TraceNotFound:
            if missing_ok:
                return {}
            raise
        change(record)
        await self.store.set(self._key(client, trace_id), orjson.dumps(record), self.ttl_s)
        return record


def _mark_retried(record: JSON) -> None:
    implicit = record.setdefault("implicit", {})
    implicit["retried"] = True


__all__ = ["LABELS", "Rating", "TraceLog", "TraceNotFound", "parse_rating"]
