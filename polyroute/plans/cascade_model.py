"""The error-cost curve of a cascade over its threshold grid: measured, or estimated smoothly.

A chain is a tuple of model columns; every stage but the last accepts its answer when
its confidence is above its threshold (``gt``), else the next stage is asked; the last
stage always answers.  :func:`grid_curve` returns the mean quality and mean cost of the
chain for every combination of candidate thresholds, in one of two modes:

- ``hard``: what the cascade does on these rows (accept iff ``confidence > t``, the
  recorded score): exact on the rows, and what plain grid search maximises (it overfits);
- ``smooth``: an estimate of quality meant to hold on new prompts.  Each accepting
  stage's correctness is replaced by a calibrated ``P(correct | confidence)`` (a
  ridge-penalised logistic fit on ``z``, the logit of the confidence), and the
  acceptance indicator by a Gaussian kernel of Silverman's bandwidth on ``z``, so the
  estimate moves smoothly with the thresholds and no single row decides where one
  falls.  The joint distribution of the stages' confidences (and the last stage's
  correctness) stays the empirical one of the rows: the dependence between stages is
  kept, not modelled.  Cost is counted exactly (its noise is small, and smoothing a
  skewed confidence distribution would bias it); with its standard error, so a
  budget can be met with a margin.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from polyroute.dataset import Matrix

Floats = npt.NDArray[np.float64]
_P_MIN, _P_MAX = 1e-12, 1.0 - 1e-9
_RIDGE = 1.0  # sklearn's default (C=1): a weak prior that washes out with data


def logit_scale(conf: Floats) -> Floats:
    """Log-probability confidences on the logit scale of ``exp(conf)`` (monotone, clipped)."""
    p = np.exp(np.minimum(np.nan_to_num(conf, nan=-np.inf), 0.0))
    p = np.clip(p, _P_MIN, _P_MAX)
    out: Floats = np.log(p) - np.log1p(-p)
    return np.where(np.isnan(conf), np.nan, out)


def _sigmoid(x: Floats) -> Floats:
    out: Floats = 0.5 * (1.0 + np.tanh(0.5 * x))
    return out


def _normal_cdf(x: Floats) -> Floats:
    """The standard normal CDF to within 0.01 (the logistic approximation; numpy has no erf)."""
    return _sigmoid(1.702 * x)


@dataclass(frozen=True, slots=True)
class Calibration:
    """``P(correct | z) = sigmoid(a + b * (z - center) / scale)`` on the logit scale ``z``,
    and the acceptance kernel's bandwidth on that scale."""

    a: float
    b: float
    center: float
    scale: float
    bandwidth: float

    def predict(self, z: Floats) -> Floats:
        return _sigmoid(self.a + self.b * (np.nan_to_num(z) - self.center) / self.scale)

    def accept(self, conf: Floats, thresholds: Floats) -> Floats:
        """Smoothed ``conf > t``: a (thresholds x rows) matrix of acceptance weights."""
        z = logit_scale(conf)
        out = _normal_cdf((z[None, :] - logit_scale(thresholds)[:, None]) / self.bandwidth)
        return np.where(np.isnan(z)[None, :], 0.0, out)


def _bandwidth(z: Floats) -> float:
    """Silverman's rule of thumb."""
    if len(z) < 2:
        return 1.0
    q75, q25 = (float(v) for v in np.percentile(z, [75, 25]))
    spread = float(np.std(z))
    if q75 > q25:
        spread = min(spread, (q75 - q25) / 1.34)
    return max(0.9 * spread * math.pow(len(z), -0.2), 1e-3)


def calibrate(conf: Floats, correct: Floats) -> Calibration:
    """Fit ``P(correct | confidence)`` by penalised logistic regression (Newton steps)."""
    ok = ~np.isnan(conf)
    z, y = logit_scale(conf[ok]), correct[ok]
    if len(z) == 0:
        return Calibration(0.0, 0.0, 0.0, 1.0, 1.0)
    center = float(np.mean(z))
    scale = float(np.std(z)) or 1.0
    x = np.column_stack([np.ones_like(z), (z - center) / scale])
    prior = np.array([_logit_of_mean(y), 0.0])
    w = prior.copy()
    penalty = _RIDGE * np.eye(2)
    for _ in range(50):
        p = _sigmoid(x @ w)
        grad = x.T @ (p - y) + penalty @ (w - prior)
        hess = (x * (p * (1 - p))[:, None]).T @ x + penalty
        step = np.linalg.solve(hess, grad)
        w -= step
        if float(np.max(np.abs(step))) < 1e-8:
            break
    return Calibration(float(w[0]), float(w[1]), center, scale, _bandwidth(z))


def _logit_of_mean(y: Floats) -> float:
    m = min(max(float(np.mean(y)), 1e-3), 1 - 1e-3)
    return math.log(m / (1 - m))


def threshold_grid(conf: Floats, points: int) -> Floats:
    """Candidate ``gt`` thresholds: one below every value (accept all), then midpoints
    between neighbouring distinct quantiles of the recorded confidences."""
    values = conf[~np.isnan(conf)]
    if len(values) == 0:
        return np.array([-1.0])
    q = np.unique(np.quantile(values, np.linspace(0.0, 1.0, points)))
    mids = (q[:-1] + q[1:]) / 2.0
    return np.concatenate([[float(q[0]) - 1.0], mids])


def _axis(values: Floats, k: int, dims: int) -> Floats:
    """``values`` (G, n) shaped to broadcast along grid axis ``k`` of ``dims`` axes."""
    shape = [1] * dims + [values.shape[1]]
    shape[k] = values.shape[0]
    return values.reshape(shape)


def grid_curve(
    scores: Matrix,
    costs: Matrix,
    conf: Matrix,
    chain: tuple[int, ...],
    grids: list[Floats],
    *,
    mode: str,
    calibrations: list[Calibration] | None = None,
) -> tuple[Floats, Floats, Floats]:
    """Mean quality, mean cost and the standard error of that mean cost over the rows,
    one per point of the threshold grid (shape ``[len(g) for g in grids]``, one grid per
    stage but the last)."""
    dims = len(chain) - 1
    n = scores.shape[0]
    reach: Floats = np.ones([1] * dims + [n])  # P(the row reaches the stage): for quality
    hard_reach: Floats = np.ones([1] * dims + [n])  # exactly (0/1): for cost
    quality: Floats = np.zeros([1] * dims + [n])
    cost: Floats = np.zeros([1] * dims + [n])
    for k, col in enumerate(chain[:-1]):
        c, t = conf[:, col], grids[k]
        hard = (np.nan_to_num(c, nan=-np.inf)[None, :] > t[:, None]).astype(np.float64)
        if mode == "hard":
            acc, value = hard, scores[:, col]
        else:
            assert calibrations is not None
            cal = calibrations[k]
            acc, value = cal.accept(c, t), cal.predict(logit_scale(c))
        a = _axis(acc, k, dims)
        cost = cost + hard_reach * costs[:, col]
        quality = quality + reach * a * value
        reach = reach * (1.0 - a)
        hard_reach = hard_reach * (1.0 - _axis(hard, k, dims))
    last = chain[-1]
    cost = cost + hard_reach * costs[:, last]
    quality = quality + reach * scores[:, last]
    mean_cost = cost.mean(axis=-1)
    spread = np.sqrt(np.maximum((cost**2).mean(axis=-1) - mean_cost**2, 0.0) / max(n - 1, 1))
    return quality.mean(axis=-1), mean_cost, spread


def simulate(
    scores: Matrix, costs: Matrix, conf: Matrix, chain: tuple[int, ...], thresholds: Floats
) -> tuple[Floats, Floats, npt.NDArray[np.intp]]:
    """Per row: the quality and cost of the cascade, and the stage that answered."""
    n = scores.shape[0]
    answered = np.full(n, len(chain) - 1, dtype=np.intp)
    open_rows = np.ones(n, dtype=bool)
    cost = np.zeros(n)
    for k, col in enumerate(chain):
        cost += np.where(open_rows, costs[:, col], 0.0)
        if k == len(chain) - 1:
            break
        accept = open_rows & (np.nan_to_num(conf[:, col], nan=-np.inf) > thresholds[k])
        answered[accept] = k
        open_rows &= ~accept
    picked = np.asarray(chain, dtype=np.intp)[answered]
    quality = scores[np.arange(n), picked]
    return quality, cost, answered


__all__ = ["Calibration", "calibrate", "grid_curve", "logit_scale", "simulate", "threshold_grid"]
