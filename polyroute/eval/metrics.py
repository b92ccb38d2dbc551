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

import numpy as np

from polyroute.curves import (  # the one chooser and envelope, re-exported for the reports
    GRID_ROWS,
    TIE,
    Curve,
    Floats,
    Ints,
    aiq,
    choose,
    envelope,
    envelope_at,
    envelope_indices,
    lambda_grid,
    selections,
    sweep,
    to_w,
)


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
    cand = np.flatnonzero(mean_q >= top - TIE)
    return int(cand[np.argmin(mean_c[cand])])


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


__all__ = [
    "GRID_ROWS",
    "Curve",
    "Floats",
    "Ints",
    "aiq",
    "apgr",
    "best_single",
    "bootstrap_chunks",
    "bootstrap_weights",
    "choose",
    "cost_to_match",
    "cpt",
    "envelope",
    "envelope_at",
    "envelope_indices",
    "interval",
    "lambda_grid",
    "pgr_curve",
    "quality_at_cost",
    "selections",
    "single_models",
    "strong_preference",
    "sweep",
    "to_w",
]
