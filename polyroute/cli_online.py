"""``polyroute simulate``: replay a routing dataset as a stream with bandit feedback.

::

    polyroute simulate --data FILE_OR_DIR --models models.json --out choices.jsonl
        --router bandit|linucb|thompson|ema|ARTIFACT_DIR [--warm-start ARTIFACT]
        [--willingness-to-pay W | --target-cost-fraction F] [--budget-per-query B]
        [--seed S] [--drift MODEL@FRACTION] [--curve FILE.csv]

Rows are replayed in file order (``polyroute.online.simulate``); an artifact directory
as ``--router`` is the static baseline (its choice at the W in force, no learning).
``--target-cost-fraction`` takes W from the calibration table of the artifact (the
router or ``--warm-start``).  ``--budget-per-query B`` runs the budget autopilot
(``polyroute.online.budget``), starting at the given W or at ``20 * B``.  A bandit with
``--warm-start`` holds its spend at the artifact's (the spend anchor,
``polyroute.online.linear``; ``--router linucb:spend_anchor=0`` turns it off).  Writes one
``{"id", "model"}`` line per row, prints a summary, and writes the cumulative utility
and spend per row as CSV (and a PNG beside it when matplotlib is installed).
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from polyroute.errors import ConfigError

ROUTER_HELP = "bandit (= linucb), linucb, thompson, ema (NAME[:KEY=VALUE...]) or an artifact DIR"
#: the autopilot's starting W without one given: paying the whole budget is worth 0.05 quality
BUDGET_W_FACTOR = 20.0


def add_simulate_parser(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "simulate",
        help="replay a routing dataset as a stream with bandit feedback (online routers)",
        description="Replay rows in file order: the router sees the prompt, chooses one "
        "model, then learns only that model's score and cost.",
    )
    p.add_argument("--data", required=True, help="routing dataset: JSONL file or directory")
    p.add_argument("--models", default=None, help="models.json (default: beside --data)")
    p.add_argument("--router", required=True, metavar="SPEC", help=ROUTER_HELP)
    p.add_argument(
        "--out", required=True, metavar="CHOICES.jsonl", help='one {"id", "model"} line per row'
    )
    p.add_argument(
        "--warm-start",
        metavar="ARTIFACT",
        help="a trained router artifact as the bandit's prior; the bandit then holds its "
        "spend at 0.97 x the artifact's (spend_anchor=0 in the spec turns that off)",
    )
    w = p.add_mutually_exclusive_group()
    w.add_argument(
        "--willingness-to-pay",
        type=float,
        metavar="W",
        help="USD per unit of quality (default: inf)",
    )
    w.add_argument(
        "--target-cost-fraction",
        type=float,
        metavar="F",
        help="W from the artifact's calibration table",
    )
    p.add_argument(
        "--budget-per-query", type=float, metavar="B", help="USD: steer W to spend B per row"
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the router and of --drift")
    p.add_argument(
        "--drift", metavar="MODEL@FRACTION", help="MODEL keeps 30%% of its scores from FRACTION on"
    )
    p.add_argument(
        "--curve", metavar="FILE.csv", help="cumulative utility and spend (default: beside --out)"
    )
    p.set_defaults(func=cmd_simulate)


def _router_spec(spec: str) -> tuple[str, dict[str, Any], int | None] | Path:
    """An artifact directory, or ``(name, hyperparameters, embedding dim)``."""
    from polyroute.online.build import ONLINE_ROUTERS, parse_online_spec

    path = Path(spec)
    if path.is_dir():
        return path
    name = spec.split(":", 1)[0]
    if name not in ONLINE_ROUTERS:
        raise ConfigError(
            f"--router {spec!r}: not an online router ({', '.join(ONLINE_ROUTERS.names())}) "
            "and not a router artifact directory"
        )
    return parse_online_spec(spec, f"--router {spec!r}")


def _willingness(args: argparse.Namespace, artifact: Path | None) -> float:
    if args.willingness_to_pay is not None:
        if not args.willingness_to_pay > 0:
            raise ConfigError("--willingness-to-pay: expected a number > 0")
        return float(args.willingness_to_pay)
    if args.target_cost_fraction is None:
        return math.inf
    if artifact is None:
        raise ConfigError(
            "--target-cost-fraction needs a calibrated artifact: give --warm-start ARTIFACT "
            "or an artifact as --router (or use --willingness-to-pay)"
        )
    from polyroute.routers.artifact import read_manifest
    from polyroute.selectors.learned import w_for_cost_fraction

    if not args.target_cost_fraction > 0:
        raise ConfigError("--target-cost-fraction: expected a number > 0")
    table = read_manifest(artifact).get("info", {}).get("calibration", [])
    return w_for_cost_fraction(
        table, args.target_cost_fraction, f"--target-cost-fraction {artifact}"
    )


def cmd_simulate(args: argparse.Namespace) -> int:
    from polyroute.eval.io import load_dataset
    from polyroute.online import BudgetController, Drift, Reward, replay, summarise

    spec = _router_spec(args.router)
    artifact = spec if isinstance(spec, Path) else _warm_path(args.warm_start)
    data = load_dataset(args.data, args.models)
    drift = Drift.parse(args.drift) if args.drift else None
    if drift is not None:
        data = drift.apply(data, args.seed)
    w = _willingness(args, artifact)
    budget = None
    if args.budget_per_query is not None:
        b = args.budget_per_query
        if not b > 0:
            raise ConfigError("--budget-per-query: expected a number > 0")
        budget = BudgetController(b, w if math.isfinite(w) else BUDGET_W_FACTOR * b)
    reward = Reward(w)
    router, stream = _setup(spec, artifact, data, reward, args.seed)
    result = replay(router, stream, budget)
    _write_choices(Path(args.out), data.ids, [data.models[i] for i in result.picks])
    start = None if drift is None else drift.start(len(data))
    summary = summarise(result, data, args.budget_per_query, start)
    _print_summary(summary, args.router)
    from polyroute.online.linear import LinearBandit

    if isinstance(router, LinearBandit) and router.spend_anchor:
        print(
            f"  spend anchor  cost priced at W {router.anchored_w():.4g} at the end, holding "
            f"spend at {router.spend_anchor:g} x the warm start's (spend_anchor=0 turns it off)"
        )
    curve = Path(args.curve) if args.curve else Path(args.out).with_suffix(".curve.csv")
    _write_curve(curve, result, args.budget_per_query)
    print(f"wrote {len(data)} choices to {args.out}; curve {curve}")
    return 0


def _warm_path(text: str | None) -> Path | None:
    if text is None:
        return None
    path = Path(text)
    if not path.is_dir():
        raise ConfigError(f"--warm-start {text}: no such router artifact directory")
    return path


def _setup(
    spec: tuple[str, dict[str, Any], int | None] | Path,
    artifact: Path | None,
    data: Any,
    reward: Any,
    seed: int,
) -> tuple[Any, Any]:
    from polyroute.online import FeatureMaker, StaticRouter, Stream, artifact_priors
    from polyroute.online.build import build_online_router

    prior_q = prior_c = None
    if artifact is not None:
        from polyroute.routers.artifact import load_router

        where = f"{'--router' if isinstance(spec, Path) else '--warm-start'} {artifact}"
        prior_q, prior_c = artifact_priors(load_router(artifact), data.prompts, data.models, where)
    if isinstance(spec, Path):
        x = np.ones((len(data), 1))
        return StaticRouter(data.models, reward), Stream(data, x, prior_q, prior_c)
    name, params, dim = spec
    x = np.ones((len(data), 1)) if dim is None else FeatureMaker(dim).transform(data.prompts)
    router = build_online_router(
        name,
        params,
        data.models,
        width=x.shape[1],
        reward=reward,
        warm_start=artifact is not None,
        seed=seed,
        where=f"--router {name}",
    )
    return router, Stream(data, x, prior_q, prior_c)


def _write_choices(out: Path, ids: tuple[str, ...], models: list[str]) -> None:
    text = "".join(
        json.dumps({"id": i, "model": m}) + "\n" for i, m in zip(ids, models, strict=True)
    )
    try:
        out.write_text(text)
    except OSError as exc:
        raise ConfigError(f"--out {out}: cannot write ({exc.strerror})") from None


def _print_summary(s: dict[str, Any], router: str) -> None:
    print(f"simulate {router}: {s['rows']} rows, W in force at the end {s['final_w']:.4g}")
    print(f"  mean quality  {s['mean_quality']:.4f}")
    print(f"  mean cost     ${s['mean_cost']:.4e}")
    print(f"  mean utility  {s['mean_utility']:.4f}  (quality - cost / W)")
    print(f"  oracle        {s['oracle_utility']:.4f}  regret {s['regret']:.4f} per row")
    print(f"  best single   {s['best_single']} utility {s['best_single_utility']:.4f} (hindsight)")
    print(f"  explored      {100 * s['explored_fraction']:.1f} % of choices")
    if "drift_start" in s:
        print(
            f"  after drift   (rows {s['drift_start'] + 1}..{s['rows']}) quality "
            f"{s['quality_after_drift']:.4f}, cost ${s['cost_after_drift']:.4e}"
        )
    if "budget_per_query" in s:
        print(
            f"  budget        ${s['budget_per_query']:.4e} per row; spent "
            f"${s['spend_per_query']:.4e} ({100 * s['spend_vs_budget']:+.1f} %)"
        )
        if s["best_single_within_budget"] is not None:
            print(
                f"  best single within budget: {s['best_single_within_budget']} "
                f"quality {s['best_single_within_budget_quality']:.4f}"
            )


def _write_curve(path: Path, result: Any, budget: float | None) -> None:
    utility = np.cumsum(result.utility)
    spend = np.cumsum(result.cost)
    lines = ["row,cumulative_utility,cumulative_spend_usd,willingness_to_pay"]
    for i in range(len(spend)):
        lines.append(f"{i + 1},{utility[i]:.6f},{spend[i]:.8g},{result.w[i]:.6g}")
    try:
        path.write_text("\n".join(lines) + "\n")
    except OSError as exc:
        raise ConfigError(f"--curve {path}: cannot write ({exc.strerror})") from None
    _plot(path.with_suffix(".png"), utility, spend, budget)


def _plot(path: Path, utility: Any, spend: Any, budget: float | None) -> None:
    """A PNG of cumulative utility and spend, when matplotlib (the 'learn' extra) is installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    fig, left = plt.subplots(figsize=(7, 4), dpi=110)
    try:
        rows = np.arange(1, len(spend) + 1)
        left.plot(rows, utility, color="tab:blue", label="cumulative utility")
        left.set_xlabel("row")
        left.set_ylabel("cumulative utility", color="tab:blue")
        right = left.twinx()
        right.plot(rows, spend, color="tab:red", label="cumulative spend (USD)")
        if budget is not None:
            right.plot(rows, rows * budget, "--", color="tab:red", lw=0.8, label="budget")
        right.set_ylabel("cumulative spend (USD); dashed: budget", color="tab:red")
        fig.tight_layout()
        fig.savefig(path)
    finally:
        plt.close(fig)
