"""Find the willingness to pay ``w`` that meets a cost or quality target on a dataset.

The router predicts quality and estimates costs for every row; the chooser is
swept over a fine grid of ``w`` (:func:`polyroute.eval.metrics.lambda_grid`
with 400 quantiles).  For ``target_cost_fraction = f`` the answer is the point of
highest quality whose mean true cost is at most ``f`` times the best single
model's mean cost (ties: the cheaper point, then the smaller ``w``); for
``target_quality = Q`` it is the cheapest point whose mean quality is at least ``Q``.
``train`` stores the same points (:func:`calibration_table`, from out-of-fold
predictions) and the gateway's ``target_cost_fraction`` picks from them by the
same rule: one calibration.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from polyroute import curves
from polyroute.dataset import Matrix, RoutingDataset
from polyroute.errors import ConfigError
from polyroute.eval import metrics as mx
from polyroute.eval.metrics import Floats

GRID_POINTS = 400


class Predictor(Protocol):
    """A fitted router: ``predict`` (and, optionally, ``estimate_costs`` and ``models_``)."""

    def predict(self, prompts: Sequence[str]) -> Matrix: ...


@dataclass(frozen=True)
class Calibration:
    """The chosen operating point and what it achieves on the calibration rows."""

    willingness_to_pay: float
    cost: float
    quality: float
    cost_fraction: float  # of the best single model's mean cost
    best_single: str
    best_single_quality: float
    best_single_cost: float
    target: str


def _align(
    pred: Matrix, est: Matrix, router_models: tuple[str, ...], data: RoutingDataset
) -> tuple[Matrix, Matrix]:
    missing = [m for m in data.models if m not in router_models]
    if missing:
        raise ConfigError(
            f"--data: models {', '.join(missing)} are not in the router's pool "
            f"({', '.join(router_models)})"
        )
    idx = [router_models.index(m) for m in data.models]
    return pred[:, idx], est[:, idx]


@dataclass(frozen=True)
class _Points:
    """The router's operating points on ``data`` over the fine grid of ``w``."""

    w: Floats
    cost: Floats
    quality: Floats
    best: int  # the best single model's column
    best_quality: float
    best_cost: float


def _points(pred: Matrix, est: Matrix, data: RoutingDataset) -> _Points:
    lams = mx.lambda_grid(pred, est, GRID_POINTS)
    sel_q, sel_c = mx.selections(pred, est, data.scores, data.costs, lams)
    mean_q, mean_c = mx.single_models(data.scores, data.costs)
    b = mx.best_single(mean_q, mean_c)
    return _Points(
        mx.to_w(lams), sel_c.mean(1), sel_q.mean(1), b, float(mean_q[b]), float(mean_c[b])
    )


def calibration_table(pred: Matrix, est: Matrix, data: RoutingDataset) -> list[dict[str, float]]:
    """Every operating point as ``{"w", "cost_fraction", "quality"}`` (``w > 0``; cost as a
    fraction of the best single model's): what ``train`` stores from out-of-fold
    predictions and the gateway's ``target_cost_fraction`` picks from, by the rule
    ``calibrate`` uses (:func:`polyroute.curves.pick_within_cost`)."""
    pts = _points(pred, est, data)
    ref = pts.best_cost or 1.0
    rows: dict[float, dict[str, float]] = {}
    for w, c, q in zip(pts.w.tolist(), pts.cost.tolist(), pts.quality.tolist(), strict=True):
        if w > 0:
            rows[w] = {"w": w, "cost_fraction": round(c / ref, 6), "quality": round(q, 6)}
    return [rows[w] for w in sorted(rows)]


def calibrate(
    pred: Matrix,
    est: Matrix,
    data: RoutingDataset,
    target_cost_fraction: float | None = None,
    target_quality: float | None = None,
) -> Calibration:
    """Pick ``w`` on ``data`` (``pred``/``est`` columns in ``data.models`` order)."""
    if (target_cost_fraction is None) == (target_quality is None):
        raise ConfigError("calibrate: give exactly one of --target-cost-fraction, --target-quality")
    pts = _points(pred, est, data)
    cost, quality = pts.cost, pts.quality
    if target_cost_fraction is not None:
        if target_cost_fraction <= 0:
            raise ConfigError("--target-cost-fraction: expected a number > 0")
        target = f"cost <= {target_cost_fraction:g} x best single model's cost"
        found = curves.pick_within_cost(cost, quality, pts.w, target_cost_fraction * pts.best_cost)
        if found is None:
            raise ConfigError(
                f"--target-cost-fraction {target_cost_fraction:g}: no operating point is that "
                f"cheap (cheapest costs {cost.min() / pts.best_cost:.3f} x the best single model)"
            )
        pick = found
    else:
        q = float(target_quality or 0.0)
        ok = np.flatnonzero(quality >= q - 1e-12)
        target = f"quality >= {q:g}"
        if ok.size == 0:
            raise ConfigError(
                f"--target-quality {q:g}: unreachable; the router's best is {quality.max():.4f}"
            )
        pick = ok[np.lexsort((-quality[ok], cost[ok]))[0]]
    return Calibration(
        willingness_to_pay=float(pts.w[pick]),
        cost=float(cost[pick]),
        quality=float(quality[pick]),
        cost_fraction=float(cost[pick] / pts.best_cost) if pts.best_cost > 0 else math.nan,
        best_single=data.models[pts.best],
        best_single_quality=pts.best_quality,
        best_single_cost=pts.best_cost,
        target=target,
    )


def calibrate_router(
    router: Predictor,
    data: RoutingDataset,
    target_cost_fraction: float | None = None,
    target_quality: float | None = None,
) -> Calibration:
    """Predict with a fitted router (``predict``, ``estimate_costs``, ``models_``) and calibrate."""
    models = tuple(getattr(router, "models_", data.models))
    pred = np.asarray(router.predict(data.prompts), dtype=np.float64)
    estimate = getattr(router, "estimate_costs", None)
    if callable(estimate):
        est = np.asarray(estimate(data.prompts), dtype=np.float64)
    else:  # no estimator: the mean cost of each model on the data, in the router's order
        means = data.costs.mean(axis=0)
        est = np.broadcast_to(
            [means[data.models.index(m)] if m in data.models else 0.0 for m in models], pred.shape
        ).copy()
    pred, est = _align(pred, est, models, data)
    return calibrate(pred, est, data, target_cost_fraction, target_quality)
