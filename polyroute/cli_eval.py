"""``polyroute eval`` and ``polyroute calibrate``: the judging half of the workbench.

::

    polyroute eval --data DATA.jsonl --models MODELS.json [--test TEST.jsonl | --cv K]
                   [--repeat N] [--group-by FIELD]
                   --routers a,b,... [--plans cascade,vote:K] --json OUT.json --plot OUT.png
    polyroute calibrate --router DIR --data DATA.jsonl
                        (--target-cost-fraction F | --target-quality Q)

``--data`` also takes a dataset directory or a built-in name (``dcrouter``).
Errors are :class:`~polyroute.errors.ConfigError` / ``DatasetError``; ``polyroute.cli``
prints them as one line.
"""

from __future__ import annotations

import argparse
import importlib
import math
import sys
from typing import Any

from polyroute.errors import ConfigError


def add_eval_parser(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "eval",
        help="train and judge routers: cost-quality curves, AIQ, baselines",
        description="Train routers and judge them against the baselines and the oracle.",
    )
    p.add_argument(
        "--data",
        required=True,
        help="training JSONL (or a RouterBench-style .csv), a dataset directory, "
        "or a built-in name (dcrouter)",
    )
    p.add_argument("--models", default=None, help="models.json (default: beside --data)")
    how = p.add_mutually_exclusive_group()
    how.add_argument("--test", default=None, help="judge on this JSONL instead of by CV")
    how.add_argument(
        "--cv",
        type=int,
        default=None,
        metavar="K",
        help="k-fold CV (default 5); with --group-by, K folds over the groups",
    )
    p.add_argument(
        "--repeat",
        type=int,
        default=1,
        metavar="N",
        help="repeat the k-fold split N times with seeds SEED..SEED+N-1: mean, interval "
        "and range over repeats (default 1)",
    )
    p.add_argument(
        "--group-by",
        default=None,
        metavar="FIELD",
        help="keep each value of a row field (e.g. task) on one side: leave one group out "
        "(past 20 groups, or with --cv K: K folds over shuffled groups) "
        "and a per-group table",
    )
    p.add_argument(
        "--routers",
        default=None,
        help="comma-separated routers, each NAME[:KEY=VALUE...] (e.g. knn:k=20:encoder=tfidf); "
        "default: every learned router but auto and the baselines",
    )
    p.add_argument(
        "--plans",
        default=None,
        metavar="SPEC[,SPEC...]",
        help="also judge plans on the same folds: cascade[:lo=0.1:hi=1.2:points=12"
        ":statistic=S:max_stages=3] (a cascade fitted per target cost fraction) and vote:K "
        "(majority of the K best models); needs rows with answers and logprobs or "
        "verify_logprob",
    )
    p.add_argument(
        "--json", dest="json_out", default=None, metavar="OUT.json", help="write the report as JSON"
    )
    p.add_argument("--plot", default=None, metavar="OUT.png", help="draw the cost-quality curves")
    p.add_argument(
        "--markdown",
        default=None,
        metavar="OUT.md",
        help="also write the table as Markdown, with the command that made it",
    )
    p.add_argument("--seed", type=int, default=0, help="fold and bootstrap seed (default 0)")
    p.add_argument(
        "--bootstrap",
        type=int,
        default=1000,
        metavar="B",
        help="bootstrap resamples for 95%% intervals (0 = none; default 1000)",
    )
    p.add_argument(
        "--limit",
        type=int,
        default=None,
        metavar="N",
        help="use only the first N rows of --data (quick looks)",
    )
    p.add_argument(
        "--compare-to",
        default=None,
        metavar="NAME",
        help="report each router's AIQ and quality-at-cost minus NAME's, with paired intervals",
    )
    p.add_argument("--per-task", action="store_true", help="also print the per-task table")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_eval)


def add_calibrate_parser(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "calibrate",
        help="find the willingness to pay that meets a cost or quality target",
    )
    p.add_argument("--router", required=True, help="trained router directory (polyroute train)")
    p.add_argument("--data", required=True, help="JSONL with scores and costs to calibrate on")
    p.add_argument("--models", default=None, help="models.json (default: beside --data)")
    target = p.add_mutually_exclusive_group(required=True)
    target.add_argument(
        "--target-cost-fraction",
        type=float,
        default=None,
        metavar="F",
        help="at most F x the best single model's mean cost (e.g. 0.4)",
    )
    target.add_argument(
        "--target-quality",
        type=float,
        default=None,
        metavar="Q",
        help="the cheapest operating point with mean quality >= Q",
    )
    p.set_defaults(func=cmd_calibrate)


def _router_list(text: str | None) -> tuple[str, ...]:
    from polyroute.eval.evaluate import BASELINES, parse_spec, router_names

    if text is None:
        return tuple(n for n in router_names() if n not in BASELINES and n != "auto")
    specs = tuple(n.strip() for n in text.split(",") if n.strip())
    known = router_names()
    for spec in specs:
        name, _ = parse_spec(spec)
        if name not in known and name not in BASELINES:
            raise ConfigError(
                f"--routers: unknown router {name!r}; expected one of: {', '.join(known) or 'none'}"
            )
    return tuple(s for s in specs if s not in BASELINES)  # baselines are always reported


def _check_args(args: argparse.Namespace) -> None:
    if args.bootstrap < 0:
        raise ConfigError(f"--bootstrap: expected >= 0, got {args.bootstrap}")
    if args.repeat < 1:
        raise ConfigError(f"--repeat: expected >= 1, got {args.repeat}")
    if args.test and (args.repeat != 1 or args.group_by):
        raise ConfigError("--test: judged on one test file; --repeat and --group-by need CV")
    if args.group_by is not None and not args.group_by.strip():
        raise ConfigError("--group-by: expected a row field name (e.g. task)")
    if args.limit is not None and args.limit < 2:
        raise ConfigError(f"--limit: expected >= 2, got {args.limit}")
    if args.plans and args.test:
        raise ConfigError("--plans: plans are judged by cross-validation; drop --test")


def cmd_eval(args: argparse.Namespace) -> int:
    from polyroute.eval.evaluate import Plan
    from polyroute.eval.io import load_dataset, load_groups
    from polyroute.eval.report import render, write_json

    _check_args(args)
    data = load_dataset(args.data, args.models)
    groups = load_groups(args.data, args.group_by) if args.group_by else None
    if args.limit is not None:
        data = data.subset(range(min(args.limit, len(data))))
        groups = None if groups is None else groups[: len(data)]
    test = load_dataset(args.test, args.models) if args.test else None
    plans = None
    if args.plans:
        from polyroute.eval.plans import load_plan_rows, parse_plans

        plans = load_plan_rows(args.data, data, parse_plans(args.plans))
    plan = Plan(
        routers=_router_list(args.routers),
        cv=args.cv,
        seed=args.seed,
        resamples=args.bootstrap,
        compare_to=args.compare_to,
        repeats=args.repeat,
        group_by=args.group_by,
    )
    report = _run_with_progress(data, plan, test, groups, plans=plans, quiet=args.quiet)
    report["protocol"]["data"] = str(args.data)
    render(report, per_task=args.per_task)
    if args.json_out:
        write_json(report, args.json_out)
        print(f"wrote {args.json_out}", file=sys.stderr)
    if args.markdown:
        from polyroute.eval.report import write_markdown

        command = " ".join(["polyroute", *sys.argv[1:]])
        write_markdown(report, args.markdown, command=command, per_task=args.per_task)
        print(f"wrote {args.markdown}", file=sys.stderr)
    if args.plot:
        from polyroute.eval.plot import plot_report

        plot_report(report, args.plot, title=f"{args.data}: cost-quality")
        print(f"wrote {args.plot}", file=sys.stderr)
    return 0


def _run_with_progress(
    data: Any, plan: Any, test: Any, groups: Any, *, plans: Any, quiet: bool
) -> dict[str, Any]:
    from polyroute.eval.evaluate import evaluate, scheme_for

    if quiet:
        return evaluate(data, plan, test, groups=groups, plans=plans)
    from rich.progress import (
        BarColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    fits = 1 if test is not None else scheme_for(len(data), plan, groups).fits
    steps = (len(plan.routers) + (len(plans.specs) if plans else 0)) * fits + 1
    columns = (
        TextColumn("{task.description:<28}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
    )
    from rich.console import Console

    with Progress(*columns, transient=True, console=Console(stderr=True)) as bar:
        task = bar.add_task("judging", total=steps)
        started = [False]

        def step(label: str) -> None:
            if started[0]:
                bar.advance(task)
            started[0] = True
            bar.update(task, description=label)

        report = evaluate(data, plan, test, progress=step, groups=groups, plans=plans)
        bar.advance(task)
    return report


def _load_artifact(path: str) -> Any:
    try:
        mod = importlib.import_module("polyroute.routers.artifact")
    except ImportError:
        raise ConfigError("--router: loading trained routers is not available") from None
    for attr in ("load_router", "load_artifact", "load"):
        fn = getattr(mod, attr, None)
        if callable(fn):
            return fn(path)
    raise ConfigError("--router: polyroute.routers.artifact has no loader")


def cmd_calibrate(args: argparse.Namespace) -> int:
    from polyroute.eval.calibrate import calibrate_router
    from polyroute.eval.io import load_dataset

    router = _load_artifact(args.router)
    data = load_dataset(args.data, args.models)
    cal = calibrate_router(router, data, args.target_cost_fraction, args.target_quality)
    w = cal.willingness_to_pay
    w_text = ".inf" if math.isinf(w) else f"{w:.6g}"
    print(f"target:   {cal.target}  ({len(data)} rows of {args.data})")
    print(
        f"best single model: {cal.best_single}  quality {cal.best_single_quality:.4f}  "
        f"mean cost ${cal.best_single_cost:.3e}"
    )
    print(
        f"chosen:   w = {w_text} USD per unit of quality  ->  quality {cal.quality:.4f}, "
        f"mean cost ${cal.cost:.3e} ({cal.cost_fraction:.3f} x best single)"
    )
    print("(holds on these rows; on rows the router was trained on, it is optimistic)")
    print("config snippet:")
    print(f"  select: {{router: {args.router}, willingness_to_pay: {w_text}}}")
    return 0
