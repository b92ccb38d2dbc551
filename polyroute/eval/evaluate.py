"""Train and judge routers: k-fold cross-validation or a held-out test file.

:func:`evaluate` fits every named router (looked up in the learned-router
registry) on training rows, predicts quality and estimates costs for the rows it
is judged on, sweeps the chooser over ``w`` and scores the curve with
:mod:`polyroute.eval.metrics`.  Baselines (random, cheapest, best single) and the
oracle are computed from the score/cost matrices and always reported.  Under
``cv=K`` the folds are a seeded permutation split in K parts and the metrics are
computed once on the pooled out-of-fold predictions of all rows.
"""

from __future__ import annotations

import importlib
import json
import platform
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from polyroute.dataset import Matrix, RoutingDataset
from polyroute.errors import ConfigError, DatasetError
from polyroute.eval import metrics as mx
from polyroute.eval import summary

BASELINES = ("random", "cheapest", "best-single", "oracle")
Progress = Callable[[str], None]


class Router(Protocol):
    """What the workbench needs of a learned router (see ``polyroute.routers.base``)."""

    def fit(self, dataset: RoutingDataset) -> Any: ...

    def predict(self, prompts: Sequence[str]) -> Matrix: ...


@dataclass(frozen=True)
class Plan:
    """How to judge: ``cv`` folds (ignored when a test set is given), seed, bootstrap size."""

    routers: tuple[str, ...]
    cv: int = 5
    seed: int = 0
    resamples: int = 1000
    per_task: bool = True
    compare_to: str | None = None  # a router or baseline: paired differences to it


def router_names() -> list[str]:
    """Names in the learned-router registry (empty if none is installed)."""
    reg = _registry()
    return [] if reg is None else list(reg.names())


def _registry() -> Any:
    try:
        mod = importlib.import_module("polyroute.routers.learned")
    except ImportError:
        return None
    for attr in ("LEARNED_ROUTERS", "ROUTERS", "REGISTRY"):
        reg = getattr(mod, attr, None)
        if reg is not None and hasattr(reg, "get"):
            return reg
    return None


def parse_spec(spec: str) -> tuple[str, dict[str, Any]]:
    """``"knn:k=20:encoder=tfidf"`` -> ``("knn", {"k": 20, "encoder": "tfidf"})`` (JSON values)."""
    name, *pairs = spec.split(":")
    params: dict[str, Any] = {}
    for pair in pairs:
        key, eq, text = pair.partition("=")
        if not eq or not key:
            raise ConfigError(f"--routers {spec!r}: expected NAME[:KEY=VALUE...], got {pair!r}")
        try:
            params[key] = json.loads(text)
        except json.JSONDecodeError:
            params[key] = text
    return name, params


def make_router(spec: str) -> Router:
    """A fresh, unfitted router from a spec ``NAME[:KEY=VALUE...]`` (see :func:`parse_spec`)."""
    name, params = parse_spec(spec)
    reg = _registry()
    if reg is None:
        raise ConfigError(f"--routers: unknown router {name!r}; no learned routers are installed")
    cls = reg.get(name, where="--routers")
    from polyroute.routers.base import validate_params

    params = validate_params(cls, params, f"--routers {spec!r}")
    try:
        router: Router = cls(**params)
    except TypeError as exc:
        raise ConfigError(f"--routers {spec!r}: bad hyperparameters ({exc})") from None
    return router


def _predict(router: Router, rows: RoutingDataset) -> Matrix:
    by_rows = getattr(router, "predict_dataset", None)
    pred = by_rows(rows) if callable(by_rows) else router.predict(rows.prompts)
    return np.asarray(pred, dtype=np.float64)


def _estimate(router: Router, train: RoutingDataset, rows: RoutingDataset) -> Matrix:
    est = getattr(router, "estimate_costs", None)
    if callable(est):
        return np.asarray(est(rows.prompts), dtype=np.float64)
    return np.broadcast_to(train.costs.mean(axis=0), rows.costs.shape).copy()


def folds(n: int, k: int, seed: int) -> list[np.ndarray[Any, np.dtype[np.intp]]]:
    """``k`` disjoint test-row index sets covering ``range(n)`` (seeded permutation)."""
    if k < 2 or k > n:
        raise ConfigError(f"--cv: expected 2 <= K <= {n} (number of rows), got {k}")
    perm = np.random.default_rng(seed).permutation(n)
    return [np.sort(part) for part in np.array_split(perm, k)]


@dataclass
class _Run:
    pred: Matrix
    est: Matrix
    fit_s: float = 0.0
    predict_s: float = 0.0


def _judge(
    name: str,
    splits: list[tuple[RoutingDataset, RoutingDataset, np.ndarray[Any, Any]]],
    n: int,
    m: int,
    progress: Progress | None,
) -> _Run:
    run = _Run(np.zeros((n, m)), np.zeros((n, m)))
    for i, (train, test, rows) in enumerate(splits):
        if progress is not None:
            progress(f"{name} fold {i + 1}/{len(splits)}")
        router = make_router(name)
        t0 = time.perf_counter()
        router.fit(train)
        t1 = time.perf_counter()
        pred = _predict(router, test)
        run.predict_s += time.perf_counter() - t1
        run.fit_s += t1 - t0
        if pred.shape != (len(test), m):
            raise ConfigError(
                f"router {name!r} predicted shape {pred.shape}, expected {(len(test), m)}"
            )
        est = _estimate(router, train, test)
        if not (np.isfinite(pred).all() and np.isfinite(est).all()):
            raise ConfigError(f"router {name!r} returned non-finite predictions or cost estimates")
        run.pred[rows] = pred
        run.est[rows] = est
    return run


def align(test: RoutingDataset, models: tuple[str, ...]) -> RoutingDataset:
    """``test`` with its columns in the order of ``models`` (the training pool)."""
    if set(test.models) != set(models):
        raise DatasetError(
            f"test set models {sorted(test.models)} differ from training models {sorted(models)}"
        )
    idx = [test.models.index(m) for m in models]
    return RoutingDataset(
        test.ids,
        test.prompts,
        models,
        test.scores[:, idx],
        test.costs[:, idx],
        test.tasks,
        test.prices,
    )


def evaluate(
    data: RoutingDataset,
    plan: Plan,
    test: RoutingDataset | None = None,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Judge ``plan.routers`` and the baselines; the JSON-ready report (see docs/metrics.md)."""
    known = (*BASELINES, "zero-router", *plan.routers)
    if plan.compare_to is not None and plan.compare_to not in known:
        raise ConfigError(f"--compare-to {plan.compare_to!r}: not among {', '.join(known)}")
    if test is not None:
        judged = align(test, data.models)
        everything = np.arange(len(judged))
        splits = [(data, judged, everything)]
        protocol: dict[str, Any] = {"mode": "test", "train_rows": len(data)}
    else:
        judged = data
        splits = [
            (data.subset(np.setdiff1d(np.arange(len(data)), f)), data.subset(f), f)
            for f in folds(len(data), plan.cv, plan.seed)
        ]
        protocol = {"mode": "cv", "folds": plan.cv, "seed": plan.seed}
    s, c = judged.scores, judged.costs
    outcomes = summary.baselines(s, c)
    timings: dict[str, dict[str, float]] = {}
    for name in plan.routers:
        run = _judge(name, splits, len(judged), len(data.models), progress)
        outcomes.append(summary.from_predictions(run.pred, run.est, s, c, name=name))
        timings[name] = {
            "fit_seconds": run.fit_s,
            "predict_ms_per_prompt": 1000 * run.predict_s / len(judged),
        }
    if progress is not None:
        progress("bootstrap")
    return _report(judged, outcomes, timings, plan, protocol)


def _report(
    judged: RoutingDataset,
    outcomes: list[summary.Outcome],
    timings: dict[str, dict[str, float]],
    plan: Plan,
    protocol: dict[str, Any],
) -> dict[str, Any]:
    s, c = judged.scores, judged.costs
    mean_q, mean_c = mx.single_models(s, c)
    best = mx.best_single(mean_q, mean_c)
    rows, values = [], []
    for o in outcomes:
        entry: dict[str, Any] = {
            "name": o.name,
            "kind": o.kind,
            "metrics": summary.weighted_metrics(o, s, c),
        }
        # every outcome sees the same resamples (same seed): paired comparisons
        boot = mx.bootstrap_chunks(len(judged), plan.resamples, plan.seed)
        values.append(summary.bootstrap_values(o, s, c, boot) if plan.resamples else {})
        entry["intervals"] = summary.intervals(values[-1])
        entry["curve"] = summary.curve_json(o)
        if plan.per_task and judged.tasks is not None:
            entry["per_task"] = summary.per_task(o, s, c, judged.tasks)
        entry.update(timings.get(o.name, {}))
        rows.append(entry)
    if plan.compare_to is not None:
        ref = [o.name for o in outcomes].index(plan.compare_to)
        for entry, vals in zip(rows, values, strict=True):
            if entry["kind"] == "router" or entry["name"] == "oracle":
                entry["paired"] = summary.paired(entry, vals, rows[ref], values[ref])
    report = {
        "protocol": {
            **protocol,
            "rows": len(judged),
            "bootstrap_resamples": plan.resamples,
            "python": platform.python_version(),
        },
        "models": [
            {"name": m, "quality": float(mean_q[j]), "cost": float(mean_c[j])}
            for j, m in enumerate(judged.models)
        ],
        "best_single": judged.models[best],
        "cost_range": [float(mean_c.min()), float(mean_c.max())],
        "routers": rows,
    }
    return dict(summary.clean(report))
