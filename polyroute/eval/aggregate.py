"""Combine judged outcomes into the report: metrics, intervals, repeats, per-task and per-group.

``outcomes[r][i]`` is outcome ``i`` (a baseline, the oracle or a router) in
repeat ``r``; every repeat judged every row once.  With one repeat the metrics
are computed on the pooled out-of-fold choices and the intervals are bootstrap
percentiles over prompts.  With ``N`` repeats each metric is computed per repeat
and reported as:

- ``metrics``: the mean over the repeats (empty if it is empty in any repeat);
- ``repeats``: the N values, their lowest and highest (``range``) and their
  standard deviation (``sd``): how much the choice of folds moves the number;
- ``intervals``: the bootstrap of that mean: each resample of prompts is scored
  in every repeat and the N values averaged; the interval is the 2.5th and
  97.5th percentile of the averages.

With group labels, ``per_group`` holds every metric on the rows of each group
(each judged by routers that never saw the group, or its fold of groups).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from polyroute.dataset import RoutingDataset
from polyroute.eval import metrics as mx
from polyroute.eval import summary
from polyroute.eval.metrics import Floats
from polyroute.eval.summary import Outcome

Table = dict[str, dict[str, float]]


def mean_of(per_repeat: Sequence[dict[str, float]]) -> dict[str, float]:
    """Metric by metric, the mean over repeats (nan if nan in any repeat)."""
    return {k: float(np.mean([m[k] for m in per_repeat])) for k in per_repeat[0]}


def spread(per_repeat: Sequence[dict[str, float]]) -> dict[str, dict[str, Any]]:
    """Metric by metric: the values of the repeats, their range and standard deviation."""
    out: dict[str, dict[str, Any]] = {}
    for k in per_repeat[0]:
        vals = np.array([m[k] for m in per_repeat], dtype=np.float64)
        ok = vals[np.isfinite(vals)]
        out[k] = {
            "values": vals.tolist(),
            "range": [float(ok.min()), float(ok.max())] if ok.size else None,
            "sd": float(ok.std(ddof=1)) if ok.size > 1 else math.nan,
        }
    return out


def mean_tables(tables: Sequence[Table]) -> Table:
    """Per-task (or per-group) tables of the repeats, averaged cell by cell."""
    return {key: mean_of([t[key] for t in tables]) for key in tables[0]}


def mean_values(per_repeat: Sequence[dict[str, Floats]]) -> dict[str, Floats]:
    """Bootstrap values of the repeats (same resamples), averaged resample by resample."""
    return {
        k: np.asarray(np.mean([v[k] for v in per_repeat], axis=0), dtype=np.float64)
        for k in per_repeat[0]
    }


def _distinct(runs: list[Outcome]) -> list[Outcome]:
    """The repeats of one outcome; a baseline (the same object in every repeat) counts once."""
    return runs if any(o is not runs[0] for o in runs) else runs[:1]


def _entry(
    runs: list[Outcome],
    judged: RoutingDataset,
    *,
    resamples: int,
    seed: int,
    per_task: bool,
    groups: Sequence[str] | None,
) -> tuple[dict[str, Any], dict[str, Floats]]:
    s, c = judged.scores, judged.costs
    first, distinct = runs[0], _distinct(runs)
    per_repeat = [summary.weighted_metrics(o, s, c) for o in distinct] * (
        len(runs) // len(distinct)
    )
    entry: dict[str, Any] = {"name": first.name, "kind": first.kind}
    entry["metrics"] = mean_of(per_repeat)
    if len(runs) > 1:
        entry["repeats"] = spread(per_repeat)
    values: dict[str, Floats] = {}
    if resamples:
        # every outcome and every repeat sees the same resamples (same seed): paired
        values = mean_values(
            [
                summary.bootstrap_values(o, s, c, mx.bootstrap_chunks(len(judged), resamples, seed))
                for o in distinct
            ]
        )
    entry["intervals"] = summary.intervals(values)
    entry["curve"] = summary.curve_json(first)  # the first repeat's curve
    if per_task and judged.tasks is not None:
        tasks = judged.tasks
        entry["per_task"] = mean_tables([summary.per_task(o, s, c, tasks) for o in distinct])
    if groups is not None:
        entry["per_group"] = mean_tables([summary.per_task(o, s, c, groups) for o in distinct])
    return entry, values


def report(
    judged: RoutingDataset,
    outcomes: list[list[Outcome]],
    resamples: int,
    seed: int,
    *,
    per_task: bool = True,
    compare_to: str | None = None,
    groups: Sequence[str] | None = None,
) -> dict[str, Any]:
    """The report (not yet cleaned of nan) for ``outcomes[repeat][outcome]``."""
    s, c = judged.scores, judged.costs
    mean_q, mean_c = mx.single_models(s, c)
    best = mx.best_single(mean_q, mean_c)
    rows, values = [], []
    for i in range(len(outcomes[0])):
        runs = [rnd[i] for rnd in outcomes]
        entry, vals = _entry(
            runs, judged, resamples=resamples, seed=seed, per_task=per_task, groups=groups
        )
        rows.append(entry)
        values.append(vals)
    if compare_to is not None:
        ref = [r["name"] for r in rows].index(compare_to)
        for entry, vals in zip(rows, values, strict=True):
            if entry["kind"] == "router" or entry["name"] == "oracle":
                entry["paired"] = summary.paired(entry, vals, rows[ref], values[ref])
    return {
        "protocol": {"rows": len(judged), "bootstrap_resamples": resamples},
        "models": [
            {"name": m, "quality": float(mean_q[j]), "cost": float(mean_c[j])}
            for j, m in enumerate(judged.models)
        ],
        "best_single": judged.models[best],
        "cost_range": [float(mean_c.min()), float(mean_c.max())],
        "routers": rows,
    }
