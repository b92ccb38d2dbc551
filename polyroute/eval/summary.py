"""Turn what routers chose into report numbers: metrics, bootstrap intervals, per-task rows.

An :class:`Outcome` is a router reduced to what the metrics need: for each
operating point ``w`` the true score and cost of the model it picked on every
row.  Baselines (random, cheapest, best single) are outcomes with one point,
the zero router has one point per single model, and the oracle is the sweep
over the true scores and costs.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from polyroute.eval import metrics as mx
from polyroute.eval.metrics import Floats

METRICS = (
    "aiq",
    "quality_at_best_cost",
    "gain_at_best_cost",
    "cost_fraction_to_match",
    "max_quality",
    "cost_at_max_quality",
)
PAIR_METRICS = ("apgr", "cpt50", "cpt80")


@dataclass(frozen=True)
class Outcome:
    """Per operating point (rows of ``sel_q``/``sel_c``), the true score/cost chosen per prompt."""

    name: str
    kind: str  # "router", "baseline" or "oracle"
    w: Floats
    sel_q: Floats
    sel_c: Floats
    preference: Floats | None = None  # two-model pools: strong-model preference per prompt


def from_predictions(
    pred: Floats, est: Floats, scores: Floats, costs: Floats, *, name: str, kind: str = "router"
) -> Outcome:
    """Sweep the chooser over ``w`` on predicted quality and estimated cost."""
    lams = mx.lambda_grid(pred, est)
    sel_q, sel_c = mx.selections(pred, est, scores, costs, lams)
    pref = None
    if scores.shape[1] == 2:
        strong, weak = _strong_weak(scores, costs)
        pref = mx.strong_preference(pred, est, strong, weak)
    return Outcome(name, kind, mx.to_w(lams), sel_q, sel_c, pref)


def baselines(scores: Floats, costs: Floats) -> list[Outcome]:
    """Random (expected over a uniform pick), cheapest, best single model, the zero router
    (RouterBench: the single models as operating points, mixed at random) and the oracle."""
    mean_q, mean_c = mx.single_models(scores, costs)
    cheap = int(np.lexsort((-mean_q, mean_c))[0])
    best = mx.best_single(mean_q, mean_c)
    one = np.array([math.inf])
    n = scores.shape[0]
    pair = scores.shape[1] == 2
    return [
        Outcome(
            "random",
            "baseline",
            one,
            scores.mean(1)[None],
            costs.mean(1)[None],
            np.zeros(n) if pair else None,
        ),
        Outcome("cheapest", "baseline", one, scores[None, :, cheap], costs[None, :, cheap]),
        Outcome("best-single", "baseline", one, scores[None, :, best], costs[None, :, best]),
        Outcome("zero-router", "baseline", np.full(scores.shape[1], math.nan), scores.T, costs.T),
        from_predictions(scores, costs, scores, costs, name="oracle", kind="oracle"),
    ]


def _best(scores: Floats, costs: Floats) -> int:
    return mx.best_single(*mx.single_models(scores, costs))


def _strong_weak(scores: Floats, costs: Floats) -> tuple[int, int]:
    mean_q, mean_c = mx.single_models(scores, costs)
    strong = mx.best_single(mean_q, mean_c)
    return strong, 1 - strong


def point_metrics(
    cost: Floats, quality: Floats, mean_q: Floats, mean_c: Floats, best: int | None = None
) -> dict[str, float]:
    """Every curve metric of one router against the single models (see docs/metrics.md).

    ``best`` fixes which model is "the best single model" (default: the highest
    ``mean_q``); resamples keep the model found on all rows and re-average it.
    """
    b = mx.best_single(mean_q, mean_c) if best is None else best
    qb, cb = float(mean_q[b]), float(mean_c[b])
    q_at = mx.quality_at_cost(cost, quality, cb)
    top = int(np.lexsort((cost, -quality))[0])
    return {
        "aiq": mx.aiq(cost, quality, float(mean_c.min()), float(mean_c.max())),
        "quality_at_best_cost": q_at,
        "gain_at_best_cost": q_at - qb,
        "cost_fraction_to_match": mx.cost_to_match(cost, quality, qb) / cb if cb > 0 else math.nan,
        "max_quality": float(quality[top]),
        "cost_at_max_quality": float(cost[top]),
    }


def pair_metrics(
    outcome: Outcome, scores: Floats, costs: Floats, weights: Floats | None
) -> dict[str, float]:
    """APGR and CPT(50 %)/CPT(80 %) (in % of calls) for a two-model pool."""
    if outcome.preference is None:
        return {}
    strong, weak = _strong_weak(scores, costs)
    frac, pgr = mx.pgr_curve(outcome.preference, scores, strong, weak, weights)
    return {
        "apgr": mx.apgr(frac, pgr),
        "cpt50": 100.0 * mx.cpt(frac, pgr, 0.5),
        "cpt80": 100.0 * mx.cpt(frac, pgr, 0.8),
    }


def weighted_metrics(
    outcome: Outcome, scores: Floats, costs: Floats, weights: Floats | None = None
) -> dict[str, float]:
    """All metrics with optional row weights (summing to 1): bootstrap and per-task reuse this."""
    if weights is None:
        cost, quality = outcome.sel_c.mean(1), outcome.sel_q.mean(1)
    else:
        cost, quality = outcome.sel_c @ weights, outcome.sel_q @ weights
    mean_q, mean_c = mx.single_models(scores, costs, weights)
    out = point_metrics(cost, quality, mean_q, mean_c, _best(scores, costs))
    if cost.size == 1:
        out["aiq"] = math.nan  # a single operating point is not a curve
    out.update(pair_metrics(outcome, scores, costs, weights))
    return out


def bootstrap_values(
    outcome: Outcome, scores: Floats, costs: Floats, boot: Floats | Iterable[Floats]
) -> dict[str, Floats]:
    """Every metric on each resample (row weights ``[B x n]``, or chunks of them)."""
    best = _best(scores, costs)
    names = METRICS + (PAIR_METRICS if outcome.preference is not None else ())
    values: dict[str, list[float]] = {k: [] for k in names}
    for chunk in [boot] if isinstance(boot, np.ndarray) else boot:
        cost_b, qual_b = outcome.sel_c @ chunk.T, outcome.sel_q @ chunk.T
        mq_b, mc_b = chunk @ scores, chunk @ costs
        for r in range(chunk.shape[0]):
            res = point_metrics(cost_b[:, r], qual_b[:, r], mq_b[r], mc_b[r], best)
            if cost_b.shape[0] == 1:
                res["aiq"] = math.nan
            res.update(pair_metrics(outcome, scores, costs, chunk[r]))
            for k in names:
                values[k].append(res[k])
    return {k: np.asarray(v, dtype=np.float64) for k, v in values.items()}


def intervals(values: dict[str, Floats], level: float = 0.95) -> dict[str, list[float] | None]:
    """Percentile intervals of bootstrap values, metric by metric."""
    out: dict[str, list[float] | None] = {}
    for k, v in values.items():
        iv = mx.interval(v, level)
        out[k] = None if iv is None else [iv[0], iv[1]]
    return out


def bootstrap(
    outcome: Outcome,
    scores: Floats,
    costs: Floats,
    boot: Floats | Iterable[Floats],
    level: float = 0.95,
) -> dict[str, list[float] | None]:
    """Percentile intervals: resample prompts, recompute every metric."""
    return intervals(bootstrap_values(outcome, scores, costs, boot), level)


PAIRED = ("aiq", "quality_at_best_cost")


def paired(
    entry: dict[str, Any],
    values: dict[str, Floats],
    ref_entry: dict[str, Any],
    ref_values: dict[str, Floats],
) -> dict[str, Any]:
    """Difference to a reference router on the same resamples: point value and 95 % interval."""
    out: dict[str, Any] = {"reference": ref_entry["name"]}
    for k in PAIRED:
        point = entry["metrics"][k] - ref_entry["metrics"][k]
        diff = values[k] - ref_values[k] if k in values and k in ref_values else np.zeros(0)
        iv = mx.interval(diff) if diff.size else None
        out[k] = {"delta": point, "interval": None if iv is None else [iv[0], iv[1]]}
    return out


def per_task(
    outcome: Outcome, scores: Floats, costs: Floats, tasks: Sequence[str]
) -> dict[str, dict[str, float]]:
    """Every metric recomputed on the rows of each task alone."""
    labels = np.asarray(tasks)
    out: dict[str, dict[str, float]] = {}
    for task in sorted(set(tasks)):
        rows = labels == task
        wts = rows / rows.sum()
        out[task] = weighted_metrics(outcome, scores, costs, wts)
    return out


def curve_json(outcome: Outcome) -> dict[str, list[float | None]]:
    """The curve on all rows, sorted by cost; ``w = inf`` is written as null."""
    cost, quality = outcome.sel_c.mean(1), outcome.sel_q.mean(1)
    order = np.lexsort((quality, cost))
    return {
        "w": [None if math.isinf(x) else float(x) for x in outcome.w[order]],
        "cost": [float(x) for x in cost[order]],
        "quality": [float(x) for x in quality[order]],
    }


def clean(value: Any) -> Any:
    """nan/inf -> None, recursively, so reports are valid JSON."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [clean(v) for v in value]
    return value
