"""Tune a cascade from recorded answers: the stage chain and the acceptance thresholds.

::

    fit = fit_cascade(data, Target(cost_fraction=0.5))   # data: a CascadeData
    fit.stages   # (CascadeStage("gpt-4o-mini", "logprob_mean", -0.12), ..., ("llama3.1-405b", ...))

1. **Candidate chains**: subsequences of the models ordered by mean cost, at most
   ``max_stages`` long, ending at one of the ``strong`` models of highest mean score.
2. **Thresholds** for a chain maximise the *smoothed* estimate of quality
   (:mod:`polyroute.plans.cascade_model`) under the target: mean cost at most
   ``F`` x the best single model's mean cost (the estimate plus ``COST_Z`` standard
   errors: the point of best quality on the budget's edge is the one whose cost the
   rows most underestimate), or the largest ``quality - cost / W``.
3. **The chain**: the ``candidates`` chains of best smoothed objective on every row
   (default 1) and the best single model are compared by repeated K-fold
   cross-validation (thresholds fitted on the training folds, the cascade run on the
   held-out rows' recorded answers, every fold aiming at the same budget); the best
   under the target is kept, its thresholds refitted on every row, and its
   cross-validated quality and cost reported.  Why one chain by default: on the shared
   data (``benchmarks/bench_cascade.py``), letting held-out CV choose among 8 chains
   did worse on new rows than the smoothed objective's own choice (mc/, F=1: -0.1 vs
   +1.7 points; the CV differences between good chains are mostly fold noise), so CV
   is kept as the guard that falls back to the single model.

``mode="hard"`` with :func:`grid_search` is the naive baseline: thresholds and chain
chosen by the cascade's exact in-sample result (plain grid search), which overfits.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from polyroute.errors import ConfigError
from polyroute.plans.artifact import CascadeStage
from polyroute.plans.cascade_data import CascadeData
from polyroute.plans.cascade_model import (
    Calibration,
    Floats,
    calibrate,
    grid_curve,
    simulate,
    threshold_grid,
)

#: standard errors of the estimated mean cost kept below the budget by the threshold fit
COST_Z = 1.0
#: relative slack on the cost budget when the chain is chosen on cross-validated costs
COST_SLACK = 0.0
#: threshold candidates per stage of the naive grid search (finer than the smooth fit's)
HARD_POINTS = 50


@dataclass(frozen=True)
class Target:
    """The operating point: a cost fraction of the best single model, or a willingness to
    pay (USD per unit of quality: maximise ``quality - cost / W``)."""

    cost_fraction: float | None = None
    willingness_to_pay: float | None = None

    def __post_init__(self) -> None:
        given = [v for v in (self.cost_fraction, self.willingness_to_pay) if v is not None]
        if len(given) != 1:
            raise ConfigError("target: give exactly one of cost_fraction, willingness_to_pay")
        if not (math.isfinite(given[0]) and given[0] > 0):
            raise ConfigError(f"target: expected a positive finite number, got {given[0]}")

    def as_json(self) -> dict[str, float]:
        if self.cost_fraction is not None:
            return {"cost_fraction": self.cost_fraction}
        assert self.willingness_to_pay is not None
        return {"willingness_to_pay": self.willingness_to_pay}

    def score(self, quality: Floats, cost: Floats, ref_cost: float, slack: float = 0.0) -> Floats:
        """Larger is better; an infeasible point scores below every feasible one."""
        if self.willingness_to_pay is not None:
            out: Floats = quality - cost / self.willingness_to_pay
            return out
        assert self.cost_fraction is not None
        budget = self.cost_fraction * ref_cost * (1.0 + slack) * (1.0 + 1e-9)
        tie = 1e-6 * cost / max(ref_cost, 1e-300)
        return np.where(cost <= budget, quality - tie, -1e6 - tie)


@dataclass(frozen=True)
class CascadeFit:
    """A tuned cascade: stages, what cross-validation measured, and the reference."""

    stages: tuple[CascadeStage, ...]
    statistic: str
    target: Target
    cv: dict[str, Any]
    reference: dict[str, Any]
    candidates: list[dict[str, Any]] = field(default_factory=list)


def best_single(data: CascadeData) -> int:
    """The column of highest mean score (ties: the cheaper)."""
    q, c = data.scores.mean(axis=0), data.costs.mean(axis=0)
    return int(np.lexsort((c, -q))[0])


def candidate_chains(data: CascadeData, max_stages: int, strong: int = 3) -> list[tuple[int, ...]]:
    """Cost-ordered subsequences of the models ending at one of the ``strong`` best."""
    q, c = data.scores.mean(axis=0), data.costs.mean(axis=0)
    order = sorted(range(len(data.models)), key=lambda j: (c[j], data.models[j]))
    best = set(np.argsort(-q, kind="stable")[:strong].tolist())
    chains = []
    for length in range(1, max_stages + 1):
        for chain in itertools.combinations(order, length):
            if chain[-1] in best:
                chains.append(chain)
    return chains


def _curve(
    data: CascadeData, chain: tuple[int, ...], mode: str, points: int
) -> tuple[list[Floats], Floats, Floats, Floats]:
    """The grids, and quality, cost and cost's standard error at every grid point."""
    grids = [threshold_grid(data.confidence[:, j], points) for j in chain[:-1]]
    cals: list[Calibration] | None = None
    if mode == "smooth":
        cals = [calibrate(data.confidence[:, j], data.scores[:, j]) for j in chain[:-1]]
    q, c, se = grid_curve(
        data.scores, data.costs, data.confidence, chain, grids, mode=mode, calibrations=cals
    )
    return grids, q, c, se


def fit_thresholds(
    data: CascadeData,
    chain: tuple[int, ...],
    target: Target,
    mode: str,
    *,
    points: int = 25,
    reference: int | None = None,
) -> tuple[Floats, float]:
    """The thresholds of ``chain`` that best meet ``target`` on ``data`` (and their score).
    ``reference``: the column whose cost ``F`` is a fraction of (default: the best single
    model of ``data``; cross-validation passes the one of all the rows, so that every
    fold aims at the same budget)."""
    ref = best_single(data) if reference is None else reference
    ref_cost = float(data.costs[:, ref].mean())
    if len(chain) == 1:
        q1 = data.scores[:, chain[0]].mean(keepdims=True)
        return np.zeros(0), float(
            target.score(q1, data.costs[:, chain[0]].mean(keepdims=True), ref_cost)[0]
        )
    grids, q, c, se = _curve(data, chain, mode, points)
    if mode == "smooth" and target.cost_fraction is not None:
        c = c + COST_Z * se
    score = target.score(q, c, ref_cost)
    at = np.unravel_index(int(np.argmax(score)), score.shape)
    return np.array([g[i] for g, i in zip(grids, at, strict=True)]), float(score[at])


def _folds(n: int, folds: int, repeats: int, seed: int) -> list[tuple[Any, Any]]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(repeats):
        parts = np.array_split(rng.permutation(n), folds)
        for k in range(folds):
            train = np.concatenate([p for i, p in enumerate(parts) if i != k])
            out.append((np.sort(train), np.sort(parts[k])))
    return out


def cross_validate(
    data: CascadeData,
    chains: list[tuple[int, ...]],
    target: Target,
    *,
    folds: int = 5,
    repeats: int = 2,
    seed: int = 0,
    mode: str = "smooth",
) -> list[dict[str, float]]:
    """Per chain: the held-out mean quality and cost of the cascade fitted on the rest."""
    if len(data) < 2 * folds:
        raise ConfigError(f"cross-validation: {len(data)} rows are too few for {folds} folds")
    sums = np.zeros((len(chains), 2))
    ref = best_single(data)
    for train_idx, test_idx in _folds(len(data), folds, repeats, seed):
        train, test = data.subset(train_idx), data.subset(test_idx)
        for i, chain in enumerate(chains):
            t, _ = fit_thresholds(train, chain, target, mode, reference=ref)
            q, c, _ = simulate(test.scores, test.costs, test.confidence, chain, t)
            sums[i] += (q.sum(), c.sum())
    sums /= repeats * len(data)
    return [{"quality": float(q), "cost": float(c)} for q, c in sums]


def _stages(
    data: CascadeData, chain: tuple[int, ...], thresholds: Floats
) -> tuple[CascadeStage, ...]:
    out = [
        CascadeStage(data.models[j], data.statistic, float(t))
        for j, t in zip(chain[:-1], thresholds, strict=True)
    ]
    return (*out, CascadeStage(data.models[chain[-1]], None, None))


def _reference(data: CascadeData) -> dict[str, Any]:
    j = best_single(data)
    return {
        "best_single": data.models[j],
        "quality": float(data.scores[:, j].mean()),
        "cost": float(data.costs[:, j].mean()),
    }


def _shortlist(
    data: CascadeData, target: Target, max_stages: int, candidates: int, mode: str
) -> list[tuple[int, ...]]:
    chains = candidate_chains(data, max_stages)
    scored = sorted(
        ((fit_thresholds(data, ch, target, mode)[1], k) for k, ch in enumerate(chains)),
        reverse=True,
    )
    short = [chains[k] for _, k in scored[:candidates]]
    single = (best_single(data),)
    return short if single in short else [*short, single]


def fit_cascade(
    data: CascadeData,
    target: Target,
    *,
    max_stages: int = 3,
    folds: int = 5,
    repeats: int = 2,
    seed: int = 0,
    candidates: int = 1,
) -> CascadeFit:
    """Choose the chain by repeated K-fold CV and fit its thresholds on every row."""
    if max_stages < 1:
        raise ConfigError(f"max_stages: expected at least 1, got {max_stages}")
    ref = _reference(data)
    chains = _shortlist(data, target, max_stages, candidates, "smooth")
    results = cross_validate(data, chains, target, folds=folds, repeats=repeats, seed=seed)
    q = np.array([r["quality"] for r in results])
    c = np.array([r["cost"] for r in results])
    pick = int(np.argmax(target.score(q, c, ref["cost"], slack=COST_SLACK)))
    thresholds, _ = fit_thresholds(data, chains[pick], target, "smooth")
    cv = {
        "quality": results[pick]["quality"],
        "cost": results[pick]["cost"],
        "cost_fraction": results[pick]["cost"] / ref["cost"],
        "folds": folds,
        "repeats": repeats,
        "seed": seed,
    }
    table = [
        {"chain": [data.models[j] for j in ch], **r, "cost_fraction": r["cost"] / ref["cost"]}
        for ch, r in zip(chains, results, strict=True)
    ]
    return CascadeFit(
        _stages(data, chains[pick], thresholds), data.statistic, target, cv, ref, table
    )


def run_stages(data: CascadeData, stages: tuple[CascadeStage, ...]) -> tuple[Floats, Floats]:
    """Per row of ``data``: the quality and cost of the cascade ``stages``, run on the
    recorded answers (each stage's recorded confidence against its threshold)."""
    col = {m: j for j, m in enumerate(data.models)}
    chain = tuple(col[s.model] for s in stages)
    t = np.array([s.threshold for s in stages[:-1]], dtype=np.float64)
    q, c, _ = simulate(data.scores, data.costs, data.confidence, chain, t)
    return q, c


def grid_search(
    data: CascadeData, target: Target, max_stages: int = 3
) -> tuple[tuple[CascadeStage, ...], tuple[int, ...], Floats]:
    """The naive tuner: the chain and thresholds of best exact result on ``data`` itself."""
    best: tuple[float, tuple[int, ...], Floats] | None = None
    for chain in candidate_chains(data, max_stages):
        t, s = fit_thresholds(data, chain, target, "hard", points=HARD_POINTS)
        if best is None or s > best[0]:
            best = (s, chain, t)
    assert best is not None
    return _stages(data, best[1], best[2]), best[1], best[2]


__all__ = [
    "CascadeFit",
    "Target",
    "best_single",
    "candidate_chains",
    "cross_validate",
    "fit_cascade",
    "fit_thresholds",
    "grid_search",
    "run_stages",
]
