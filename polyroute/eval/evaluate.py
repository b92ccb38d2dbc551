"""Train and judge routers: k-fold cross-validation, folds over groups, or a test file.

:func:`evaluate` fits every named router (looked up in the learned-router
registry) on training rows, predicts quality and estimates costs for the rows it
is judged on, sweeps the chooser over ``w`` and scores the curve with
:mod:`polyroute.eval.metrics`.  Baselines (random, cheapest, best single) and the
oracle are computed from the score/cost matrices and always reported.  The
splits come from :mod:`polyroute.eval.splits` (k folds, repeated k folds, leave
one group out, k folds over groups); in each repeat every row is judged once,
and the metrics are computed on the pooled out-of-fold predictions of all rows
(:mod:`polyroute.eval.aggregate` combines the repeats).
"""

from __future__ import annotations

import importlib
import json
import platform
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from polyroute.dataset import Matrix, RoutingDataset
from polyroute.errors import ConfigError, DatasetError
from polyroute.eval import aggregate, splits, summary
from polyroute.eval.splits import Scheme, folds

if TYPE_CHECKING:
    from polyroute.eval.plans import PlanRows

__all__ = ["BASELINES", "Plan", "align", "evaluate", "folds", "make_router", "parse_spec"]

BASELINES = ("random", "cheapest", "best-single", "oracle")
Progress = Callable[[str], None]


class Router(Protocol):
    """What the workbench needs of a learned router (see ``polyroute.routers.base``)."""

    def fit(self, dataset: RoutingDataset) -> Any: ...

    def predict(self, prompts: Sequence[str]) -> Matrix: ...


@dataclass(frozen=True)
class Plan:
    """How to judge (everything but ``routers`` is ignored when a test set is given).

    ``cv``: K folds (None: 5 over rows, or one fold per group with ``group_by``);
    ``repeats``: the k-fold split drawn with seeds ``seed .. seed + repeats - 1``;
    ``group_by``: the row field whose groups never straddle a split.
    """

    routers: tuple[str, ...]
    cv: int | None = None
    seed: int = 0
    resamples: int = 1000
    per_task: bool = True
    compare_to: str | None = None  # a router or baseline: paired differences to it
    repeats: int = 1
    group_by: str | None = None


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


@dataclass
class _Run:
    pred: Matrix
    est: Matrix
    fit_s: float = 0.0
    predict_s: float = 0.0


Split = tuple[RoutingDataset, RoutingDataset, np.ndarray[Any, Any], str]


def _judge(
    name: str,
    parts: list[Split],
    n: int,
    m: int,
    progress: Progress | None,
) -> _Run:
    run = _Run(np.zeros((n, m)), np.zeros((n, m)))
    for train, test, rows, label in parts:
        if progress is not None:
            progress(f"{name} {label}")
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


def scheme_for(n: int, plan: Plan, groups: Sequence[str] | None = None) -> Scheme:
    """The splits :func:`evaluate` uses for ``n`` rows (and group labels, if any)."""
    field = plan.group_by or "group"
    return splits.scheme(n, plan.cv, plan.repeats, plan.seed, groups=groups, field=field)


def evaluate(
    data: RoutingDataset,
    plan: Plan,
    test: RoutingDataset | None = None,
    progress: Progress | None = None,
    groups: Sequence[str] | None = None,
    *,
    plans: PlanRows | None = None,
) -> dict[str, Any]:
    """Judge ``plan.routers``, the ``plans`` and the baselines; the JSON-ready report (see
    docs/metrics.md).

    ``groups`` (one label per row of ``data``) keeps each group on one side of every split.
    ``plans`` (:func:`polyroute.eval.plans.load_plan_rows`) are judged on the same splits.
    """
    specs = () if plans is None else plans.specs
    if specs and test is not None:
        raise ConfigError("--plans: plans are judged by cross-validation; drop --test")
    known = (*BASELINES, "zero-router", *plan.routers, *(s.text for s in specs))
    if plan.compare_to is not None and plan.compare_to not in known:
        raise ConfigError(f"--compare-to {plan.compare_to!r}: not among {', '.join(known)}")
    judged, rounds, protocol = _rounds(data, plan, test, groups)
    s, c = judged.scores, judged.costs
    base = summary.baselines(s, c)
    outcomes: list[list[summary.Outcome]] = [list(base) for _ in rounds]
    timings: dict[str, dict[str, float]] = {}
    for name in plan.routers:
        fit_s = predict_s = 0.0
        for r, parts in enumerate(rounds):
            run = _judge(name, parts, len(judged), len(data.models), progress)
            outcomes[r].append(summary.from_predictions(run.pred, run.est, s, c, name=name))
            fit_s, predict_s = fit_s + run.fit_s, predict_s + run.predict_s
        timings[name] = {
            "fit_seconds": fit_s,
            "predict_ms_per_prompt": 1000 * predict_s / (len(judged) * len(rounds)),
        }
    extras = _judge_plans(judged, rounds, outcomes, plans, seed=plan.seed, progress=progress)
    if progress is not None:
        progress("bootstrap")
    report = aggregate.report(
        judged,
        outcomes,
        plan.resamples,
        plan.seed,
        per_task=plan.per_task,
        compare_to=plan.compare_to,
        groups=groups,
    )
    for entry in report["routers"]:
        entry.update(timings.get(entry["name"], {}))
        entry.update(extras.get(entry["name"], {}))
    report["protocol"] = {**protocol, **report["protocol"], "python": platform.python_version()}
    return dict(summary.clean(report))


def _judge_plans(
    judged: RoutingDataset,
    rounds: list[list[Split]],
    outcomes: list[list[summary.Outcome]],
    plans: PlanRows | None,
    *,
    seed: int,
    progress: Progress | None,
) -> dict[str, dict[str, Any]]:
    """Append every plan's outcome to each repeat's; per plan, its report extras."""
    from polyroute.eval.plans import describe, judge_plan

    extras: dict[str, dict[str, Any]] = {}
    if plans is None:
        return extras
    for spec in plans.specs:
        t0 = time.perf_counter()
        runs = []
        for r, parts in enumerate(rounds):
            folds_ = [(rows, label) for _, _, rows, label in parts]
            runs.append(judge_plan(spec, plans, judged, folds_, seed=seed, progress=progress))
            outcomes[r].append(runs[-1])
        extras[spec.text] = {
            "plan": describe(spec, runs, judged),
            "fit_seconds": time.perf_counter() - t0,
        }
    return extras


def _rounds(
    data: RoutingDataset, plan: Plan, test: RoutingDataset | None, groups: Sequence[str] | None
) -> tuple[RoutingDataset, list[list[Split]], dict[str, Any]]:
    """The judged rows, the (train, test, rows, label) splits of every repeat, the protocol."""
    if test is not None:
        if plan.repeats != 1 or groups is not None:
            raise ConfigError("--test: judged on one test file; --repeat and --group-by need CV")
        judged = align(test, data.models)
        rounds = [[(data, judged, np.arange(len(judged)), "test set")]]
        return judged, rounds, {"mode": "test", "train_rows": len(data)}
    how = scheme_for(len(data), plan, groups)
    rounds = [
        [(data.subset(f.train), data.subset(f.test), f.test, _label(f, r, how)) for f in rnd]
        for r, rnd in enumerate(how.rounds)
    ]
    return data, rounds, _protocol(how, plan, groups)


def _label(fold: splits.Fold, r: int, how: Scheme) -> str:
    return fold.label if len(how.rounds) == 1 else f"repeat {r + 1} {fold.label}"


def _protocol(how: Scheme, plan: Plan, groups: Sequence[str] | None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "mode": "cv" if groups is None else "groups",
        "splitter": how.kind,
        "folds": len(how.rounds[0]),
        "seed": plan.seed,
        "repeats": len(how.rounds),
        "seeds": list(how.seeds),
    }
    if groups is not None:
        names, counts = np.unique(np.asarray(groups, dtype=object), return_counts=True)
        out["group_by"] = plan.group_by or "group"
        out["groups"] = {str(g): int(k) for g, k in zip(names, counts, strict=True)}
    if how.note:
        out["note"] = how.note
    return out
