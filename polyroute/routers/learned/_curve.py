"""AIQ for model selection inside the learned routers (``auto``, knn's ``k``), and the
willingness-to-pay grid of the calibration table.

One implementation: the curve and its envelope are :mod:`polyroute.curves`, the ones
the workbench's reports (``polyroute.eval``) and the gateway's chooser use.
"""

from __future__ import annotations

import numpy as np

from polyroute import curves
from polyroute.dataset import Matrix


def w_grid(costs: Matrix, n: int = 60) -> list[float]:
    """Willingness-to-pay values spanning 'cheapest always' to 'quality only'."""
    scale = float(np.mean(costs)) or 1.0
    return [float(w) for w in scale * np.logspace(-3.0, 3.0, n)] + [float("inf")]


def aiq(predicted: Matrix, scores: Matrix, costs: Matrix, est_costs: Matrix | None = None) -> float:
    """AIQ of predicted qualities (out-of-fold) as the workbench reports it: the curve
    swept over the chooser's switch points, its interpolated envelope's mean over the
    single models' cost range (:mod:`polyroute.curves`; ``docs/metrics.md``)."""
    est = costs if est_costs is None else est_costs
    swept = curves.sweep(predicted, est, scores, costs)
    single = costs.mean(axis=0)
    return curves.aiq(swept.cost, swept.quality, float(single.min()), float(single.max()))
