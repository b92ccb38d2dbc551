"""Cost-quality metrics of routers, on plain numpy arrays (see ``docs/metrics.md``).

Notation: ``n`` prompts, ``m`` models; ``pred`` [n x m] predicted quality,
``est`` [n x m] estimated cost (what the chooser sees), ``scores`` and
``costs`` [n x m] the true outcomes.  ``lam = 1 / w`` is the price of quality
(w = willingness to pay, USD per unit of quality).  Every mean takes optional
row ``weights`` (summing to 1) so bootstrap resamples reuse the same code.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

Floats = npt.NDArray[np.float64]
Ints = npt.NDArray[np.intp]

_TIE = 1e-12
GRID_ROWS = 20_000


@dataclass(frozen=True)
class Curve:
    """Operating points of a router, one per ``w`` (``cost`` and ``quality`` are means)."""

    w: Floats
    cost: Floats
    quality: Floats


def choose(pred: Floats, est: Floats, lam: float) -> Ints:
    """Per row, the column maximising ``pred - lam * est``.

    Ties (within 1e-12) go to the lower estimated cost, then the lower column.
    ``lam = inf`` (w = 0) picks the cheapest estimate, ties to the higher prediction.
    """
    if math.isinf(lam):
        low = est.min(axis=1, keepdims=True)
        cand = est <= low + _TIE * (1.0 + np.abs(low))
        return np.asarray(np.where(cand, pred, -np.inf).argmax(axis=1), dtype=np.intp)
    util = pred - lam * est if lam else pred
    best = util.max(axis=1, keepdims=True)
    cand = util >= best - _TIE * (1.0 + np.abs(best))
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


def single_models(
    scores: Floats, costs: Floats, weights: Floats | None = None
) -> tuple[Floats, Floats]:
    """Mean score and mean cost of each model (columns)."""
    if weights is None:
        return scores.mean(axis=0), costs.mean(axis=0)
    return weights @ scores, weights @ costs


def best_single(mean_q: Floats, mean_c: Floats) -> int:
    """Index of the highest mean score; ties go to the cheaper model."""
    top = mean_q.max()
    cand = np.flatnonzero(mean_q >= top - _TIE)
    return int(cand[np.argmin(mean_c[cand])])


def envelope(cost: Floats, quality: Floats) -> tuple[Floats, Floats]:
    """Vertices of the non-decreasing upper envelope of the points.

    The upper concave hull (linear interpolation between operating points is
    reachable by mixing them at random), from the cheapest point up to the
    cheapest point of highest quality; beyond it the envelope stays flat.
    """
    order = np.lexsort((-quality, cost))
    hull: list[tuple[float, float]] = []
    for x, y in zip(cost[order].tolist(), quality[order].tolist(), strict=True):
        if hull and x == hull[-1][0]:
            continue  # same cost, lower quality (sorted)
        while len(hull) >= 2:
            (x1, y1), (x2, y2) = hull[-2], hull[-1]
            if (x2 - x1) * (y - y1) - (y2 - y1) * (x - x1) >= 0:  # hull[-1] on/below chord
                hull.pop()
            else:
                break
        hull.append((x, y))
    top = max(range(len(hull)), key=lambda i: (hull[i][1], -i))
    kept = hull[: top + 1]
    return np.array([p[0] for p in kept]), np.array([p[1] for p in kept])


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


def quality_at_cost(cost: Floats, quality: Floats, budget: float) -> float:
    """Best quality among operating points whose mean cost is within ``budget`` (nan if none)."""
    ok = cost <= budget * (1.0 + 1e-9)
    return float(quality[ok].max()) if ok.any() else math.nan


def cost_to_match(cost: Floats, quality: Floats, target: float) -> float:
    """Lowest mean cost of an operating point reaching ``target`` quality (nan if none)."""
    ok = quality >= target - 1e-9
    return float(cost[ok].min()) if ok.any() else math.nan


def strong_preference(pred: Floats, est: Floats, strong: int, weak: int) -> Floats:
    """The ``lam`` at which the chooser drops the strong model on a row (higher: kept longer)."""
    dc = np.maximum(est[:, strong] - est[:, weak], 1e-12)
    return np.asarray((pred[:, strong] - pred[:, weak]) / dc, dtype=np.float64)


def pgr_curve(
    preference: Floats, scores: Floats, strong: int, weak: int, weights: Floats | None = None
) -> tuple[Floats, Floats]:
    """PGR against the fraction of calls sent to the strong model.

    Rows go to the strong model in decreasing ``preference``; tied rows move
    together (points only at group ends, i.e. random tie-breaking in expectation).
    Returns ``(fraction, pgr)`` from (0, 0) to (1, 1).
    """
    n = preference.size
    wts = np.full(n, 1.0 / n) if weights is None else weights
    order = np.argsort(-preference, kind="stable")
    gain = (scores[order, strong] - scores[order, weak]) * wts[order]
    q_weak = float(wts @ scores[:, weak])
    q_strong = float(wts @ scores[:, strong])
    sorted_pref = preference[order]
    ends = np.flatnonzero(np.append(sorted_pref[1:] != sorted_pref[:-1], True))
    frac = np.concatenate([[0.0], np.cumsum(wts[order])[ends]])
    q = q_weak + np.concatenate([[0.0], np.cumsum(gain)[ends]])
    span = q_strong - q_weak
    pgr = (q - q_weak) / span if span != 0 else np.full_like(q, math.nan)
    return frac, pgr


def apgr(frac: Floats, pgr: Floats) -> float:
    """Area under the PGR curve over the fraction of strong calls (trapezoids)."""
    return float(np.sum((pgr[1:] + pgr[:-1]) / 2.0 * np.diff(frac)))


def cpt(frac: Floats, pgr: Floats, target: float) -> float:
    """Smallest fraction of strong calls (interpolated) at which PGR first reaches ``target``."""
    hit = np.flatnonzero(pgr >= target - 1e-12)
    if hit.size == 0:
        return math.nan
    k = int(hit[0])
    if k == 0:
        return float(frac[0])
    f0, f1, p0, p1 = frac[k - 1], frac[k], pgr[k - 1], pgr[k]
    return float(f0 + (target - p0) * (f1 - f0) / (p1 - p0))


def bootstrap_weights(n: int, resamples: int, seed: int) -> Floats:
    """``[resamples x n]`` row weights: multinomial counts of a resample with replacement, / n."""
    if resamples <= 0:
        return np.zeros((0, n))
    return np.concatenate(list(bootstrap_chunks(n, resamples, seed, chunk=resamples)))


def bootstrap_chunks(n: int, resamples: int, seed: int, chunk: int = 100) -> Iterator[Floats]:
    """The same resamples as :func:`bootstrap_weights`, ``chunk`` rows at a time (less memory)."""
    rng = np.random.default_rng(seed)
    done = 0
    while done < resamples:
        size = min(chunk, resamples - done)
        counts = rng.multinomial(n, np.full(n, 1.0 / n), size=size)
        done += size
        yield np.asarray(counts / n, dtype=np.float64)


def interval(values: Floats, level: float = 0.95) -> tuple[float, float] | None:
    """Percentile interval of bootstrap values (nan values dropped; None if all nan)."""
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return None
    tail = (1.0 - level) / 2.0 * 100.0
    lo, hi = np.percentile(finite, [tail, 100.0 - tail])
    return float(lo), float(hi)
