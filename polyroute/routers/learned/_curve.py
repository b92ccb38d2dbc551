"""AIQ for model selection inside the learned routers (``auto``, knn's ``k``).

One implementation: the curve and its envelope are :mod:`polyroute.curves`, the ones
the workbench's reports (``polyroute.eval``) and the gateway's chooser use.
"""

from __future__ import annotations

from polyroute import curves
from polyroute.dataset import Matrix


def aiq(predicted: Matrix, scores: Matrix, costs: Matrix, est_costs: Matrix | None = None) -> float:
    """AIQ of predicted qualities (out-of-fold) as the workbench reports it: the curve
    swept over the chooser's switch points, its interpolated envelope's mean over the
    single models' cost range (:mod:`polyroute.curves`; ``docs/metrics.md``)."""
    est = costs if est_costs is None else est_costs
    swept = curves.sweep(predicted, est, scores, costs)
    single = costs.mean(axis=0)
    return curves.aiq(swept.cost, swept.quality, float(single.min()), float(single.max()))
