"""The cost-quality curve of predicted qualities, for model selection inside ``auto``.

A compact version of the workbench metrics (``polyroute.eval``): sweep the
willingness to pay, choose per prompt with :func:`polyroute.routers.base.choose`,
and summarise the curve by its AIQ (mean of the non-decreasing upper envelope
over the cost range spanned by the single models).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from polyroute.dataset import Matrix
from polyroute.routers.base import choose

F64 = npt.NDArray[np.float64]


def w_grid(costs: Matrix, n: int = 60) -> list[float]:
    """Willingness-to-pay values spanning 'cheapest always' to 'quality only'."""
    scale = float(np.mean(costs)) or 1.0
    return [float(w) for w in scale * np.logspace(-3.0, 3.0, n)] + [float("inf")]


def curve(
    predicted: Matrix, scores: Matrix, costs: Matrix, est_costs: Matrix | None = None
) -> tuple[F64, F64]:
    """Mean true cost and mean true score of the choices, for every w in :func:`w_grid`."""
    est = costs if est_costs is None else est_costs
    rows = np.arange(scores.shape[0])
    cs, qs = [], []
    for w in w_grid(costs):
        pick = choose(predicted, est, w)
        cs.append(costs[rows, pick].mean())
        qs.append(scores[rows, pick].mean())
    return np.asarray(cs), np.asarray(qs)


def envelope(cs: F64, qs: F64, at: F64) -> F64:
    """Best quality reachable at cost <= each value of ``at`` (non-decreasing step function)."""
    order = np.argsort(cs)
    c, q = cs[order], np.maximum.accumulate(qs[order])
    pos = np.searchsorted(c, at, side="right") - 1
    return np.where(pos >= 0, q[np.maximum(pos, 0)], q[0])


def aiq(predicted: Matrix, scores: Matrix, costs: Matrix, est_costs: Matrix | None = None) -> float:
    cs, qs = curve(predicted, scores, costs, est_costs)
    single = costs.mean(axis=0)
    grid = np.linspace(single.min(), single.max(), 200)
    return float(envelope(cs, qs, grid).mean())
