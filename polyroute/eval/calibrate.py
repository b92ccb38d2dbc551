"""Find the willingness to pay ``w`` that meets a cost or quality target on a dataset.

The router predicts quality and estimates costs for every row; the chooser is
swept over a fine grid of ``w`` (:func:`polyroute.eval.metrics.lambda_grid`
with 400 quantiles).  For ``target_cost_fraction = f`` the answer is the point of
highest quality whose mean true cost is at most ``f`` times the best single
model's mean cost (ties: the cheaper point); for ``target_quality = Q`` it is the
cheapest point whose mean quality is at least ``Q``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from polyroute.dataset import Matrix, RoutingDataset
from polyroute.errors import ConfigError
from polyroute.eval import metrics as mx

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
    lams = mx.lambda_grid(pred, est, GRID_POINTS)
    sel_q, sel_c = mx.selections(pred, est, data.scores, data.costs, lams)
    cost, quality = sel_c.mean(1), sel_q.mean(1)
    mean_q, mean_c = mx.single_models(data.scores, data.costs)
    b = mx.best_single(mean_q, mean_c)
    if target_cost_fraction is not None:
        if target_cost_fraction <= 0:
            raise ConfigError("--target-cost-fraction: expected a number > 0")
        ok = np.flatnonzero(cost <= target_cost_fraction * mean_c[b] * (1 + 1e-9))
        target = f"cost <= {target_cost_fraction:g} x best single model's cost"
        if ok.size == 0:
            raise ConfigError(
                f"--target-cost-fraction {target_cost_fraction:g}: no operating point is that "
                f"cheap (cheapest costs {cost.min() / mean_c[b]:.3f} x the best single model)"
            )
        pick = ok[np.lexsort((cost[ok], -quality[ok]))[0]]
    else:
        q = float(target_quality or 0.0)
        ok = np.flatnonzero(quality >= q - 1e-12)
        target = f"quality >= {q:g}"
        if ok.size == 0:
            raise ConfigError(
                f"--target-quality {q:g}: unreachable; the router's best is {quality.max():.4f}"
            )
        pick = ok[np.lexsort((-quality[ok], cost[ok]))[0]]
    w = float(mx.to_w(lams[pick : pick + 1])[0])
    return Calibration(
        willingness_to_pay=w,
        cost=float(cost[pick]),
        quality=float(quality[pick]),
        cost_fraction=float(cost[pick] / mean_c[b]) if mean_c[b] > 0 else math.nan,
        best_single=data.models[b],
        best_single_quality=float(mean_q[b]),
        best_single_cost=float(mean_c[b]),
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
