"""Plans judged beside routers by ``polyroute eval --plans``: cascades and majority votes.

A plan is fitted on each training fold (the routers' folds) and *run* on the held-out
rows' recorded answers, then reduced to a :class:`~polyroute.eval.summary.Outcome`, so
its AIQ, quality at the best single model's cost and cost to match it come from the
same functions as the routers':

- ``cascade[:lo=0.1:hi=1.2:points=12:statistic=S:max_stages=3]``: per target cost
  fraction ``F`` in ``linspace(lo, hi, points)``, the cascade of
  :func:`~polyroute.plans.cascade_fit.fit_cascade` (``F`` x the training fold's best
  single model's cost); one operating point per ``F``.  ``S`` is ``logprob_mean``,
  ``logprob_min`` or ``verify`` (default: what the first row records).
- ``vote:K``: majority vote of the ``K`` models of best training-fold quality over
  the recorded ``answers`` in :func:`~polyroute.plans.common.normalised` form (empty
  answers abstain; a tie goes to the answer of the best of them); its cost is the
  sum of the ``K`` costs.  One operating point.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from polyroute.dataset import Matrix, RoutingDataset
from polyroute.errors import ConfigError
from polyroute.eval.summary import Outcome

__all__ = [
    "PlanRows",
    "PlanSpec",
    "describe",
    "judge_plan",
    "load_plan_rows",
    "parse_plans",
    "vote",
]

Answers = npt.NDArray[np.str_]
Rows = npt.NDArray[np.intp]
_CASCADE_KEYS = {"lo": float, "hi": float, "points": int, "statistic": str, "max_stages": int}


@dataclass(frozen=True)
class PlanSpec:
    """One ``--plans`` entry: ``kind`` is ``cascade`` or ``vote``."""

    text: str
    kind: str
    k: int = 0
    fractions: tuple[float, ...] = ()
    statistic: str | None = None
    max_stages: int = 3


@dataclass(frozen=True)
class PlanRows:
    """What the plans need of the judged rows, aligned with them: the resolved specs,
    the normalised answers (rows x models) and the confidences of each statistic."""

    specs: tuple[PlanSpec, ...]
    answers: Answers | None = None
    confidence: dict[str, Matrix] = field(default_factory=dict)


def _cascade_spec(text: str, pairs: list[str]) -> PlanSpec:
    from polyroute.eval.evaluate import parse_spec
    from polyroute.plans.cascade_data import FIELDS

    _, params = parse_spec(":".join(["cascade", *pairs]))
    opts: dict[str, Any] = {"lo": 0.1, "hi": 1.2, "points": 12, "statistic": None}
    opts["max_stages"] = 3
    for key, value in params.items():
        kind = _CASCADE_KEYS.get(key)
        if kind is None:
            raise ConfigError(f"--plans {text!r}: unknown option {key!r}; expected {_keys()}")
        try:
            opts[key] = kind(value)
        except (TypeError, ValueError):
            raise ConfigError(f"--plans {text!r}: {key} must be a {kind.__name__}") from None
    lo, hi, points = opts["lo"], opts["hi"], opts["points"]
    if not (0 < lo <= hi and math.isfinite(hi) and points >= 1 and opts["max_stages"] >= 1):
        raise ConfigError(f"--plans {text!r}: expected 0 < lo <= hi, points >= 1, max_stages >= 1")
    if opts["statistic"] is not None and opts["statistic"] not in FIELDS:
        raise ConfigError(f"--plans {text!r}: statistic must be one of {', '.join(FIELDS)}")
    fractions = tuple(round(float(f), 6) for f in np.linspace(lo, hi, points))
    return PlanSpec(text, "cascade", 0, fractions, opts["statistic"], opts["max_stages"])


def _keys() -> str:
    return ", ".join(_CASCADE_KEYS)


def parse_plans(text: str) -> tuple[PlanSpec, ...]:
    """``"cascade,vote:3"`` -> the specs (ConfigError on an unknown or malformed one)."""
    out = []
    for spec in (s.strip() for s in text.split(",")):
        if not spec:
            continue
        name, *pairs = spec.split(":")
        if name == "cascade":
            out.append(_cascade_spec(spec, pairs))
        elif name == "vote":
            if len(pairs) != 1 or not pairs[0].isdigit() or int(pairs[0]) < 1:
                raise ConfigError(f"--plans {spec!r}: expected vote:K with K >= 1 models")
            out.append(PlanSpec(spec, "vote", k=int(pairs[0])))
        else:
            raise ConfigError(f"--plans: unknown plan {name!r}; expected cascade or vote:K")
    if len({s.text for s in out}) != len(out):
        raise ConfigError("--plans: a plan is named twice")
    return tuple(out)


def _missing(spec: PlanSpec, where: str, fieldname: str, expected: str) -> ConfigError:
    return ConfigError(
        f"--plans {spec.text}: {where} has no {fieldname!r}; plans need {expected} on every row"
    )


def _statistic(spec: PlanSpec, first: Mapping[str, Any], where: str) -> str:
    if spec.statistic is not None:
        return spec.statistic
    if isinstance(first.get("logprobs"), Mapping):
        return "logprob_mean"
    if isinstance(first.get("verify_logprob"), Mapping):
        return "verify"
    raise ConfigError(
        f"--plans {spec.text}: {where} has neither 'logprobs' nor 'verify_logprob'; a cascade "
        "needs each answer's confidence (logprobs: {model: [token logprobs]} or "
        "verify_logprob: {model: log P(yes)}) on every row"
    )


def load_plan_rows(path: str | Path, data: RoutingDataset, specs: Sequence[PlanSpec]) -> PlanRows:
    """Read the answers and confidences of ``data``'s rows (the first ``len(data)`` rows of
    the dataset file at ``path``) that ``specs`` need; ConfigError names the file, the line
    and the missing field."""
    from polyroute.eval.io import WIDE_SUFFIXES, resolve_data_path
    from polyroute.jsonio import json_lines
    from polyroute.plans.cascade_data import FIELDS, statistic_of
    from polyroute.plans.common import normalised

    file = resolve_data_path(path)
    if not specs:
        return PlanRows(())
    if file.suffix in WIDE_SUFFIXES:
        raise ConfigError(f"--plans: {file} is a wide table; plans need JSONL rows with answers")
    rows = [(n, row) for _, (n, row) in zip(range(len(data)), json_lines(file), strict=False)]
    first = f"{file}:{rows[0][0]}" if rows else str(file)
    resolved = tuple(
        replace(s, statistic=_statistic(s, rows[0][1] if rows else {}, first))
        if s.kind == "cascade"
        else s
        for s in specs
    )
    voting = next((s for s in resolved if s.kind == "vote"), None)
    answers = np.full((len(data), len(data.models)), "", dtype=object) if voting else None
    stats = {s.statistic: s for s in resolved if s.statistic is not None}
    conf = {stat: np.full((len(data), len(data.models)), np.nan) for stat in stats}
    for i, (lineno, row) in enumerate(rows):
        where = f"{file}:{lineno}"
        if voting is not None and answers is not None:
            recorded = row.get("answers")
            if not isinstance(recorded, Mapping):
                raise _missing(voting, where, "answers", "answers: {model: text}")
            for j, model in enumerate(data.models):
                text = recorded.get(model)
                answers[i, j] = normalised(text) if isinstance(text, str) else ""
        for stat, spec in stats.items():
            values = row.get(FIELDS[stat])
            if not isinstance(values, Mapping):
                raise _missing(spec, where, FIELDS[stat], f"{FIELDS[stat]}: {{model: ...}}")
            for j, model in enumerate(data.models):
                value = statistic_of(stat, values.get(model))
                if value is not None and math.isfinite(value):
                    conf[stat][i, j] = value
    return PlanRows(resolved, None if answers is None else answers.astype(str), conf)


def _best_first(scores: Matrix, costs: Matrix) -> Rows:
    """Columns by mean score, best first (ties: the cheaper)."""
    return np.lexsort((costs.mean(axis=0), -scores.mean(axis=0))).astype(np.intp)


def vote(
    answers: Answers, scores: Matrix, costs: Matrix, models: Sequence[int]
) -> tuple[Matrix, Matrix]:
    """Per row: the score and cost of the majority vote of ``models`` (best first)."""
    order = list(models)
    quality = np.empty(len(answers))
    for i, row in enumerate(answers):
        said = [row[j] for j in order]
        counts: dict[str, int] = {}
        for text in said:
            if text:
                counts[text] = counts.get(text, 0) + 1
        top = max(counts.values(), default=0)
        winner = next((t for t in said if t and counts[t] == top), said[0])
        quality[i] = scores[i, order[said.index(winner)]]
    return quality, costs[:, order].sum(axis=1)


def _cascade_fold(
    spec: PlanSpec, rows: PlanRows, data: RoutingDataset, train: Rows, test: Rows, *, seed: int
) -> tuple[Matrix, Matrix]:
    from polyroute.plans.cascade_data import CascadeData
    from polyroute.plans.cascade_fit import Target, fit_cascade, run_stages

    assert spec.statistic is not None
    full = CascadeData(
        data.ids, data.models, data.scores, data.costs, rows.confidence[spec.statistic],
        spec.statistic,
    )  # fmt: skip
    fit_rows, judged = full.subset(train), full.subset(test)
    q, c = np.empty((len(spec.fractions), len(test))), np.empty((len(spec.fractions), len(test)))
    for g, frac in enumerate(spec.fractions):
        target = Target(cost_fraction=frac)
        fit = fit_cascade(fit_rows, target, max_stages=spec.max_stages, seed=seed)
        q[g], c[g] = run_stages(judged, fit.stages)
    return q, c


def judge_plan(
    spec: PlanSpec,
    rows: PlanRows,
    data: RoutingDataset,
    folds: Sequence[tuple[Rows, str]],
    *,
    seed: int,
    progress: Callable[[str], None] | None = None,
) -> Outcome:
    """Fit ``spec`` on every fold's other rows and run it on the fold's held-out ``Rows``."""
    n = len(data)
    points = len(spec.fractions) if spec.kind == "cascade" else 1
    sel_q, sel_c = np.zeros((points, n)), np.zeros((points, n))
    for test, label in folds:
        if progress is not None:
            progress(f"{spec.text} {label}")
        train = np.setdiff1d(np.arange(n), test).astype(np.intp)
        if spec.kind == "cascade":
            q, c = _cascade_fold(spec, rows, data, train, test, seed=seed)
        else:
            assert rows.answers is not None
            top = _best_first(data.scores[train], data.costs[train])[: spec.k]
            q1, c1 = vote(rows.answers[test], data.scores[test], data.costs[test], top.tolist())
            q, c = q1[None], c1[None]
        sel_q[:, test], sel_c[:, test] = q, c
    return Outcome(spec.text, "router", np.full(points, np.nan), sel_q, sel_c)


def describe(spec: PlanSpec, runs: Sequence[Outcome], data: RoutingDataset) -> dict[str, Any]:
    """The ``plan`` entry of a report row: each operating point's mean quality and cost
    (over the repeats) and its cost as a fraction of the best single model's."""
    from polyroute.eval import metrics as mx

    mean_q, mean_c = mx.single_models(data.scores, data.costs)
    ref = float(mean_c[mx.best_single(mean_q, mean_c)])
    q = np.mean([o.sel_q.mean(axis=1) for o in runs], axis=0)
    c = np.mean([o.sel_c.mean(axis=1) for o in runs], axis=0)
    points = [
        {"quality": float(qi), "cost": float(ci), "cost_fraction": float(ci / ref)}
        for qi, ci in zip(q, c, strict=True)
    ]
    if spec.kind == "vote":
        return {"kind": "vote", "k": spec.k, "points": points}
    for point, frac in zip(points, spec.fractions, strict=True):
        point["target_cost_fraction"] = frac
    return {"kind": "cascade", "statistic": spec.statistic, "points": points}
