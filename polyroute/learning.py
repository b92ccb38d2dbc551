"""What the engine keeps from its traffic, built once from the config.

- the **trace log** (``feedback:``; :mod:`polyroute.feedback`): one record per served
  request, rated by ``POST /v1/feedback``;
- the **budgets** (:mod:`polyroute.budget`): the global ``budget:`` also binds requests
  that name a model directly; the spend counters live in the engine's store;
- the **learning selectors** (``select: {type: bandit}``): bound to the engine's store,
  so that replicas learn together, and fed each rating by :func:`learn`.

The per-request budget calls stay inline in the engine (``Budgets.check``, ``charge``,
``tap``), behind a test of the decision's budgets: a request without one pays nothing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from polyroute.budget import Budget, parse_budget
from polyroute.build import build_store
from polyroute.config import Config
from polyroute.feedback import TraceLog
from polyroute.types import JSON, Decision, Store

Profiles = Mapping[str, Sequence[Decision]]


def build_trace_log(config: Config) -> TraceLog | None:
    """The trace log behind ``POST /v1/feedback``; None without ``feedback:``."""
    fb = config.feedback
    if fb is None:
        return None
    store = build_store(config, fb.store, "feedback.store")
    return TraceLog(store, fb.ttl_s, fb.store_prompts, fb.retry_window_s)


def global_budgets(config: Config) -> tuple[Budget, ...]:
    """The top-level ``budget:`` (none or one), for the decisions of direct model calls."""
    if config.budget is None:
        return ()
    return (parse_budget(config.budget, "global", f"{config.source}: budget"),)


def bind_learners(profiles: Profiles, store: Store, origin: str) -> None:
    """Give every selector that learns (it has ``bind``) the shared store, its decision's
    name and this engine's id (``origin``: a replica skips its own shared updates)."""
    for decisions in profiles.values():
        for decision in decisions:
            bind = getattr(decision.selector, "bind", None)
            if bind is not None:
                bind(store, decision.name, origin)


def learn(profiles: Profiles, record: JSON, score: float) -> bool:
    """Feedback (``score`` in [0, 1]) for a served request's trace-log ``record``: the
    selector of its decision learns from it when it can; False when it does not."""
    learner = _learner(profiles, str(record.get("decision", "")))
    if learner is None:
        return False
    cost, ms = record.get("cost_usd"), record.get("upstream_ms")
    usd = float(cost) if isinstance(cost, int | float) else 0.0
    latency_s = float(ms) / 1000 if isinstance(ms, int | float) else 0.0
    trace_id, model = str(record.get("trace_id")), str(record.get("model"))
    return bool(learner(trace_id, model, score, usd, latency_s))


def _learner(profiles: Profiles, decision: str) -> Any:
    for decisions in profiles.values():
        for d in decisions:
            if d.name == decision:
                return getattr(d.selector, "learn", None)
    return None


__all__ = ["bind_learners", "build_trace_log", "global_budgets", "learn"]
