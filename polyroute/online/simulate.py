"""Replay a routing dataset as a stream with bandit feedback (``polyroute simulate``).

Rows go in file order.  For each row the router sees only the prompt's
:class:`~polyroute.online.types.Context`, chooses one model, and then learns
only that model's score and cost.  With a :class:`BudgetController` the
willingness to pay in force moves after every answer.  The oracle, at the same
``W`` as the router on each row, takes the model of highest true utility.

Drift (:class:`Drift`, ``--drift MODEL@FRACTION``): from row
``ceil(FRACTION * rows)`` on, each of MODEL's scores is kept with probability
``keep`` = 0.3 and set to 0 otherwise (draws from ``numpy.random.default_rng(seed)``,
one per affected row in order): its expected quality falls to 30 % while every
other model and every cost stays as recorded.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import numpy.typing as npt

from polyroute.dataset import Matrix, RoutingDataset
from polyroute.errors import ConfigError
from polyroute.online.budget import BudgetController
from polyroute.online.types import Choice, Context, OnlineRouter, Outcome, Reward
from polyroute.routers.base import choose

DRIFT_KEEP = 0.3


@dataclass(frozen=True)
class Drift:
    """One model silently gets worse from ``fraction`` of the stream on (module docstring)."""

    model: str
    fraction: float
    keep: float = DRIFT_KEEP

    @classmethod
    def parse(cls, text: str) -> Drift:
        model, at, fraction = text.rpartition("@")
        try:
            value = float(fraction)
        except ValueError:
            value = math.nan
        if not at or not model or not 0 <= value <= 1:
            raise ConfigError(f"--drift {text!r}: expected MODEL@FRACTION with FRACTION in [0, 1]")
        return cls(model, value)

    def start(self, rows: int) -> int:
        return math.ceil(self.fraction * rows)

    def apply(self, data: RoutingDataset, seed: int) -> RoutingDataset:
        if self.model not in data.models:
            raise ConfigError(
                f"--drift {self.model}@{self.fraction:g}: unknown model; "
                f"expected one of {', '.join(data.models)}"
            )
        col, start = data.models.index(self.model), self.start(len(data))
        keep = np.random.default_rng(seed).random(len(data) - start) < self.keep
        scores = data.scores.copy()
        scores[start:, col] *= keep
        return replace(data, scores=scores)


@dataclass(frozen=True)
class Stream:
    """A dataset with what routers may see: shared features and optional per-model priors."""

    data: RoutingDataset
    x: Matrix
    prior_quality: Matrix | None = None
    prior_cost: Matrix | None = None

    def context(self, i: int) -> Context:
        pq, pc = self.prior_quality, self.prior_cost
        return Context(self.x[i], None if pq is None else pq[i], None if pc is None else pc[i])


class StaticRouter:
    """An offline artifact as a non-learning online router: its choice at the ``W`` in force."""

    def __init__(self, models: tuple[str, ...], reward: Reward | None = None) -> None:
        self.models = models
        self.reward = reward or Reward()

    def choose(self, context: Context) -> Choice:
        if context.prior_quality is None or context.prior_cost is None:
            raise ConfigError("static router: the stream carries no artifact predictions")
        pick = choose(
            context.prior_quality[None, :],
            context.prior_cost[None, :],
            self.reward.willingness_to_pay,
        )
        return Choice(int(pick[0]), int(pick[0]), False)

    def update(self, context: Context, model: int, outcome: Outcome) -> None:
        return None


@dataclass(frozen=True)
class Replay:
    """Per row: the pick, its true quality and cost, the ``W`` in force, the oracle's utility."""

    picks: npt.NDArray[np.intp]
    quality: Matrix
    cost: Matrix
    w: Matrix
    oracle_utility: Matrix
    explored: int

    @property
    def utility(self) -> Matrix:
        return np.asarray(self.quality - self.cost * _inv(self.w), dtype=np.float64)


def _inv(w: Matrix) -> Matrix:
    return np.where(np.isinf(w), 0.0, 1.0 / w)


def replay(router: OnlineRouter, stream: Stream, budget: BudgetController | None = None) -> Replay:
    data, n = stream.data, len(stream.data)
    picks = np.zeros(n, dtype=np.intp)
    w = np.zeros(n)
    explored = 0
    for i in range(n):
        if budget is not None:
            router.reward.willingness_to_pay = budget.willingness_to_pay
        w[i] = router.reward.willingness_to_pay
        context = stream.context(i)
        choice = router.choose(context)
        m = picks[i] = choice.model
        explored += int(choice.explored)
        outcome = Outcome(float(data.scores[i, m]), float(data.costs[i, m]))
        router.update(context, m, outcome)
        if budget is not None:
            budget.observe(outcome.cost)
    rows = np.arange(n)
    oracle = (data.scores - data.costs * _inv(w)[:, None]).max(axis=1)
    return Replay(picks, data.scores[rows, picks], data.costs[rows, picks], w, oracle, explored)


def summarise(
    result: Replay,
    data: RoutingDataset,
    budget_per_query: float | None = None,
    drift_start: int | None = None,
) -> dict[str, Any]:
    """Means, regret against the oracle, the best single model in hindsight (at the mean
    ``1/W`` in force), with a budget the spend against it, and with a drift the means
    from its first row on."""
    inv = float(_inv(result.w).mean())
    single = data.scores.mean(0) - data.costs.mean(0) * inv
    best = int(np.argmax(single))
    out: dict[str, Any] = {
        "rows": len(data),
        "mean_quality": float(result.quality.mean()),
        "mean_cost": float(result.cost.mean()),
        "mean_utility": float(result.utility.mean()),
        "oracle_utility": float(result.oracle_utility.mean()),
        "regret": float((result.oracle_utility - result.utility).mean()),
        "best_single": data.models[best],
        "best_single_utility": float(single[best]),
        "explored_fraction": result.explored / max(1, len(data)),
        "final_w": float(result.w[-1]) if len(data) else math.nan,
    }
    if budget_per_query is not None:
        out.update(_budget_summary(result, data, budget_per_query))
    if drift_start is not None and drift_start < len(data):
        after = slice(drift_start, None)
        out["drift_start"] = drift_start
        out["quality_after_drift"] = float(result.quality[after].mean())
        out["cost_after_drift"] = float(result.cost[after].mean())
    return out


def _budget_summary(result: Replay, data: RoutingDataset, budget: float) -> dict[str, Any]:
    mean_q, mean_c = data.scores.mean(0), data.costs.mean(0)
    fits = np.flatnonzero(mean_c <= budget)
    best = int(fits[np.argmax(mean_q[fits])]) if fits.size else None
    spend = float(result.cost.mean())
    return {
        "budget_per_query": budget,
        "spend_per_query": spend,
        "spend_vs_budget": spend / budget - 1.0,
        "best_single_within_budget": None if best is None else data.models[best],
        "best_single_within_budget_quality": None if best is None else float(mean_q[best]),
    }
