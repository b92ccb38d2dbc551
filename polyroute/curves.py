"""Cost-quality curves: the one chooser and the one envelope/AIQ of polyroute.

The gateway's selector (``polyroute.routers.base.choose``), ``auto``'s model
selection and the workbench's reports (``polyroute.eval.metrics``) all choose and
summarise through this module, so the curve a report shows is the one the gateway
runs.  Notation (see ``docs/metrics.md``): ``pred`` [n x m] predicted quality,
``est`` [n x m] estimated cost (what the chooser sees), ``scores`` and ``costs``
[n x m] the true outcomes; ``lam = 1 / w`` is the price of quality.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

Floats = npt.NDArray[np.float64]
Ints = npt.NDArray[np.intp]
Mask = npt.NDArray[np.bool_]

TIE = 1e-12  # relative tolerance under which two utilities are a tie
GRID_ROWS = 20_000


@dataclass(frozen=True)
class Curve:
    """Operating points of a router, one per ``w`` (``cost`` and ``quality`` are means)."""

    w: Floats
    cost: Floats
    quality: Floats


def choose(pred: Floats, est: Floats, lam: float, feasible: Mask | None = None) -> Ints:
    """Per row, the column maximising ``pred - lam * est`` among the ``feasible`` ones.

    Ties (within 1e-12) go to the lower estimated cost, then the lower column.
    ``lam = inf`` (w = 0) picks the cheapest estimate, ties to the higher prediction.
    A row with no feasible column is the caller's to handle (see ``routers.base``).
    """
    if feasible is not None:
        pred = np.where(feasible, pred, -np.inf)
        est = np.where(feasible, est, np.inf)
        if math.isinf(lam):
            return np.asarray(est.argmin(axis=1), dtype=np.intp)
    if math.isinf(lam):
        low = est.min(axis=1, keepdims=True)
        cand = est <= low + TIE * (1.0 + np.abs(low))
        return np.asarray(np.where(cand, pred, -np.inf).argmax(axis=1), dtype=np.intp)
    util = pred - lam * est if lam else pred
    best = util.max(axis=1, keepdims=True)
    cand = util >= best - TIE * (1.0 + np.abs(best))
    return np.asarray(np.where(cand, est, np.inf).argmin(axis=1), dtype=np.intp)


def lambda_grid(pred: Floats, est: Floats, points: int = 100) -> Floats:
    """Prices of quality to sweep: 0, ``points`` quantiles of the switch points, inf.

    A switch point is ``(pred[i,j] - pred[i,k]) / (est[i,j] - est[i,k])`` for a pair
    where model ``j`` is both dearer and predicted better than ``k`` on row ``i``:
    the ``lam`` at which the chooser stops preferring ``j`` over ``k``.  Above
    :data:`GRID_ROWS` rows, the quantiles come from an evenly spaced subsample.
    """
    if pred.shape[0] > GRID_ROWS:  # the quantiles of an even subsample of rows
        rows = np.linspace(0, pred.shape[0] - 1, GRID_ROWS).astype(np.intp)
        pred, est = pred[rows], est[rows]
    dp = pred[:, :, None] - pred[:, None, :]
    dc = est[:, :, None] - est[:, None, :]
    mask = (dp > 0) & (dc > 0)
    ratios = dp[mask] / dc[mask]
    inner = np.quantile(ratios, np.linspace(0.0, 1.0, points)) if ratios.size else np.zeros(0)
    grid = np.unique(np.concatenate([[0.0], inner, [np.inf]]))
    return np.asarray(grid, dtype=np.float64)


def selections(
    pred: Floats, est: Floats, scores: Floats, costs: Floats, lams: Floats
) -> tuple[Floats, Floats]:
    """True score and cost of the chosen model, ``[len(lams) x n]`` each."""
    rows = np.arange(pred.shape[0])
    sel_q = np.empty((lams.size, pred.shape[0]))
    sel_c = np.empty_like(sel_q)
    for g, lam in enumerate(lams):
        pick = choose(pred, est, float(lam))
        sel_q[g] = scores[rows, pick]
        sel_c[g] = costs[rows, pick]
    return sel_q, sel_c


def to_w(lams: Floats) -> Floats:
    """``w = 1 / lam`` (``lam = 0`` -> ``w = inf``, ``lam = inf`` -> ``w = 0``)."""
    with np.errstate(divide="ignore"):
        return np.asarray(1.0 / lams, dtype=np.float64)


def sweep(
    pred: Floats, est: Floats, scores: Floats, costs: Floats, ws: Floats | None = None
) -> Curve:
    """The cost-quality curve: for each ``w``, choose per row and average true score and cost."""
    lams = lambda_grid(pred, est) if ws is None else to_w(np.asarray(ws, dtype=np.float64))
    sel_q, sel_c = selections(pred, est, scores, costs, lams)
    return Curve(w=to_w(lams), cost=sel_c.mean(axis=1), quality=sel_q.mean(axis=1))


def envelope_indices(cost: Floats, quality: Floats) -> Ints:
    """Which points are the vertices of the non-decreasing upper envelope, by cost.

    The upper concave hull (linear interpolation between operating points is
    reachable by mixing them at random), from the cheapest point up to the
    cheapest point of highest quality; beyond it the envelope stays flat.
    """
    order = np.lexsort((-quality, cost))
    hull: list[int] = []
    for i in order.tolist():
        x, y = float(cost[i]), float(quality[i])
        if hull and x == cost[hull[-1]]:
            continue  # same cost, lower quality (sorted)
        while len(hull) >= 2:
            x1, y1 = cost[hull[-2]], quality[hull[-2]]
            x2, y2 = cost[hull[-1]], quality[hull[-1]]
            if (x2 - x1) * (y - y1) - (y2 - y1) * (x - x1) >= 0:  # hull[-1] on/below chord
                hull.pop()
            else:
                break
        hull.append(i)
    top = max(range(len(hull)), key=lambda k: (quality[hull[k]], -k))
    return np.asarray(hull[: top + 1], dtype=np.intp)


def envelope(cost: Floats, quality: Floats) -> tuple[Floats, Floats]:
    """Vertices (cost, quality) of the non-decreasing upper envelope of the points."""
    kept = envelope_indices(cost, quality)
    return np.asarray(cost[kept], dtype=np.float64), np.asarray(quality[kept], dtype=np.float64)


def envelope_at(xs: Floats, ys: Floats, c: Floats) -> Floats:
    """Envelope value at costs ``c``: 0 below the cheapest point, flat past the last."""
    vals = np.interp(c, xs, ys)
    return np.asarray(np.where(c < xs[0], 0.0, vals), dtype=np.float64)


def aiq(cost: Floats, quality: Floats, lo: float, hi: float) -> float:
    """Mean of the envelope over ``[lo, hi]`` (RouterBench AIQ; exact, piecewise linear)."""
    xs, ys = envelope(cost, quality)
    if hi <= lo:
        return float(envelope_at(xs, ys, np.array([lo]))[0])
    start = max(lo, float(xs[0]))
    if start >= hi:
        return 0.0
    inner = xs[(xs > start) & (xs < hi)]
    pts = np.concatenate([[start], inner, [hi]])
    vals = np.interp(pts, xs, ys)
    area = float(np.sum((vals[1:] + vals[:-1]) / 2.0 * np.diff(pts)))
    return area / (hi - lo)


def pick_within_cost(cost: Floats, quality: Floats, w: Floats, budget: float) -> int | None:
    """The operating point of highest quality whose cost is at most ``budget`` (ties: the
    cheaper, then the smaller willingness to pay ``w``), or None when none is that cheap.
    The one rule of ``polyroute calibrate --target-cost-fraction`` and of the gateway's
    ``target_cost_fraction`` (over the artifact's calibration table)."""
    ok = np.flatnonzero(cost <= budget * (1.0 + 1e-9))
    if ok.size == 0:
        return None
    return int(ok[np.lexsort((w[ok], cost[ok], -quality[ok]))[0]])
