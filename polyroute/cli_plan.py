"""``polyroute train --plan cascade``: tune a cascade on recorded answers and save it.

::

    polyroute train --plan cascade --data DIR --out DIR --target-cost-fraction 0.5
    polyroute train --plan cascade --data DIR --out DIR --willingness-to-pay 0.01 --stats verify

The data are a routing dataset whose rows carry each model's confidence data
(``logprobs`` or ``verify_logprob``, see ``polyroute.plans.cascade_data``).  Each
statistic asked for (default: every one the data carry) is tuned by
``polyroute.plans.cascade_fit.fit_cascade``; the one of best cross-validated result
is written as a plan artifact (``polyroute.plans.artifact``).
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np

from polyroute.errors import ConfigError

PLANS = ("cascade",)
PLAN_STATISTICS = ("logprob_mean", "logprob_min", "verify")


def add_plan_arguments(p: Any) -> None:
    """The ``--plan`` options of ``polyroute train``."""
    p.add_argument(
        "--plan", choices=PLANS, default=None, help="train a plan instead of a router (cascade)"
    )
    p.add_argument(
        "--target-cost-fraction",
        type=float,
        default=None,
        metavar="F",
        help="--plan: spend at most F x the best single model's mean cost",
    )
    p.add_argument(
        "--willingness-to-pay",
        type=float,
        default=None,
        metavar="W",
        help="--plan: maximise quality - cost / W (USD per unit of quality)",
    )
    p.add_argument(
        "--stats",
        nargs="+",
        choices=PLAN_STATISTICS,
        default=None,
        help="--plan: confidence statistics to try (default: every one the data carry)",
    )
    p.add_argument(
        "--max-stages", type=int, default=3, help="--plan: longest chain of models (default 3)"
    )
    p.add_argument("--seed", type=int, default=0, help="--plan: CV fold seed (default 0)")
    p.add_argument("--cv-folds", type=int, default=5, help="--plan: CV folds (default 5)")
    p.add_argument("--cv-repeats", type=int, default=2, help="--plan: CV repeats (default 2)")


def _target(args: argparse.Namespace) -> Any:
    from polyroute.plans.cascade_fit import Target

    f, w = args.target_cost_fraction, args.willingness_to_pay
    if (f is None) == (w is None):
        raise ConfigError(
            "--plan: give exactly one of --target-cost-fraction, --willingness-to-pay"
        )
    if args.router is not None:
        raise ConfigError("--plan and --router: give one (a plan is not a router)")
    if args.max_stages < 1 or args.cv_folds < 2 or args.cv_repeats < 1:
        raise ConfigError("--plan: --max-stages >= 1, --cv-folds >= 2, --cv-repeats >= 1")
    return Target(cost_fraction=f) if f is not None else Target(willingness_to_pay=w)


def train_plan(args: argparse.Namespace) -> int:
    from polyroute.plans.artifact import save_cascade
    from polyroute.plans.cascade_data import available_statistics, load_cascade_data
    from polyroute.plans.cascade_fit import fit_cascade

    target = _target(args)
    stats = args.stats or available_statistics(args.data)
    if not stats:
        raise ConfigError(f"--data {args.data}: rows carry no logprobs or verify_logprob")
    start = time.monotonic()
    fits = []
    for statistic in stats:
        data = load_cascade_data(args.data, statistic, args.models)
        fit = fit_cascade(
            data,
            target,
            max_stages=args.max_stages,
            folds=args.cv_folds,
            repeats=args.cv_repeats,
            seed=args.seed,
        )
        fits.append((fit, len(data)))
    q = np.array([f.cv["quality"] for f, _ in fits])
    c = np.array([f.cv["cost"] for f, _ in fits])
    best, rows = fits[int(np.argmax(target.score(q, c, fits[0][0].reference["cost"])))]
    info = {
        "cv": best.cv,
        "reference": best.reference,
        "candidates": best.candidates,
        "trained_on": {
            "data": str(args.data),
            "rows": rows,
            "statistic": best.statistic,
            "statistics_tried": {f.statistic: f.cv for f, _ in fits},
            "max_stages": args.max_stages,
            "fit_s": round(time.monotonic() - start, 2),
        },
    }
    save_cascade(args.out, best.stages, target.as_json(), info)
    _report(best, args.out)
    return 0


def _report(fit: Any, out: str) -> None:
    chain = " -> ".join(
        s.model if s.threshold is None else f"{s.model} ({s.statistic} > {s.threshold:.4g})"
        for s in fit.stages
    )
    ref, cv = fit.reference, fit.cv
    print(f"cascade: {chain}")
    print(
        f"  cv ({cv['repeats']} x {cv['folds']}-fold): quality {cv['quality']:.4f}, "
        f"cost {cv['cost']:.3g} USD = {cv['cost_fraction']:.3f} of {ref['best_single']} "
        f"(quality {ref['quality']:.4f}, cost {ref['cost']:.3g} USD)"
    )
    print(f"wrote {out}")


__all__ = ["add_plan_arguments", "train_plan"]
