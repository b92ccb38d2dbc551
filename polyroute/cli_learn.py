"""``polyroute train`` and ``polyroute predict``: the learning half of the workbench.

::

    polyroute train --data TRAIN.jsonl --models MODELS.json --router NAME|auto --out DIR
    polyroute train --plan cascade --data DIR --out DIR --target-cost-fraction F
    polyroute predict --router DIR --data PROMPTS.jsonl --out PREDS.jsonl

``--router`` takes a registry name with optional hyperparameters
(``knn:k=20:encoder=tfidf``).  ``train`` writes a router artifact (see
``polyroute.routers.artifact``) whose manifest also holds a calibration table
(willingness to pay -> expected cost fraction of the best single model, from
out-of-fold predictions) used by ``select: {router: DIR, target_cost_fraction: F}``.
``train --plan cascade`` tunes a cascade on recorded answers with confidences instead
(``polyroute.plans.cascade_fit``; the artifact is ``polyroute.plans.artifact``).
``predict`` writes one line per prompt: ``{"id": ..., "predicted": {model: quality}}``.
Errors are ``ConfigError`` / ``DatasetError``; ``polyroute.cli`` prints them as one line.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from polyroute.dataset import Matrix, RoutingDataset
from polyroute.errors import ConfigError
from polyroute.routers.base import validate_params


def add_train_parser(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "train",
        help="fit a learned router (or, with --plan, tune a plan) and write an artifact",
        description="Fit a learned router on a routing dataset and save it (JSON + numpy); "
        "with --plan cascade, tune a cascade on recorded answers and save it (JSON).",
    )
    p.add_argument("--data", required=True, help="training JSONL, dataset directory or built-in")
    p.add_argument("--models", default=None, help="models.json (default: beside --data)")
    p.add_argument(
        "--router",
        default=None,
        help="router NAME[:KEY=VALUE...] or 'auto' (chosen by cross-validation); "
        "required unless --plan is given",
    )
    p.add_argument("--out", required=True, metavar="DIR", help="artifact directory to write")
    p.add_argument(
        "--time-budget",
        type=float,
        default=None,
        metavar="S",
        help="seconds 'auto' may spend after encoding (default 900)",
    )
    p.add_argument(
        "--no-calibration", action="store_true", help="skip the calibration table (faster)"
    )
    from polyroute.cli_plan import add_plan_arguments

    add_plan_arguments(p)
    p.set_defaults(func=cmd_train)


def add_predict_parser(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "predict", help="predict every model's quality for prompts with a trained router"
    )
    p.add_argument("--router", required=True, metavar="DIR", help="artifact from 'train'")
    p.add_argument("--data", required=True, help="JSONL rows with 'prompt' (and 'id')")
    p.add_argument(
        "--out", required=True, metavar="PREDS.jsonl", help="output JSONL ('-' = stdout)"
    )
    p.set_defaults(func=cmd_predict)


def _make(spec: str, time_budget: float | None) -> Any:
    from polyroute.eval.evaluate import parse_spec
    from polyroute.routers.learned import get_router

    name, params = parse_spec(spec)
    cls = get_router(name, "--router")
    if name == "auto" and time_budget is not None:
        params.setdefault("time_budget_s", time_budget)
    params = validate_params(cls, params, f"--router {spec!r}")
    try:
        return cls(**params)
    except TypeError as exc:
        raise ConfigError(f"--router {spec!r}: bad hyperparameters ({exc})") from None


def _check_out(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out}: exists and is not a directory")
    if out.is_dir() and any(out.iterdir()) and not (out / "manifest.json").is_file():
        raise ConfigError(f"--out {out}: directory is not empty and holds no router artifact")


def _oof(router: Any, spec: str, data: RoutingDataset) -> Matrix:
    """Out-of-fold predictions: ``auto`` keeps its own; other routers refit on 3 folds."""
    own = getattr(router, "oof_", None)
    if own is not None:
        return np.asarray(own, dtype=np.float64)
    from polyroute.routers.learned._optim import kfold_indices

    out = np.zeros_like(data.scores)
    for train, test in kfold_indices(len(data), 3 if len(data) >= 3 else 2, seed=1):
        fold = _make(spec, None).fit(data.subset(train))
        out[test] = fold.predict_dataset(data.subset(test))
    return out


def _export_encoder(artifact: Path) -> None:
    """Export MiniLM to ONNX now, if the artifact reads it and it is not cached yet (torch is
    loaded here anyway): the gateway then serves it without torch and without exporting."""
    from polyroute.embed import cache_dir
    from polyroute.embed_onnx import minilm_runtime
    from polyroute.routers.artifact import read_manifest

    if "minilm" in str(read_manifest(artifact).get("encoder") or ""):
        minilm_runtime(cache_dir(), "inline")


def cmd_train(args: argparse.Namespace) -> int:
    from polyroute.eval.io import load_dataset
    from polyroute.routers.artifact import save_router

    out = Path(args.out)
    _check_out(out)
    if args.plan is not None:
        from polyroute.cli_plan import train_plan

        return train_plan(args)
    if args.router is None:
        raise ConfigError("train: give --router NAME (a router) or --plan cascade (a plan)")
    data = load_dataset(args.data, args.models)
    router = _make(args.router, args.time_budget)
    start = time.monotonic()
    router.fit(data)
    seconds = time.monotonic() - start
    info: dict[str, Any] = {
        "trained_on": str(args.data),
        "rows": len(data),
        "fit_s": round(seconds, 2),
    }
    if not args.no_calibration and len(data) >= 4:
        from polyroute.eval.calibrate import calibration_table

        est = router.estimate_costs(data.prompts)
        info["calibration"] = calibration_table(_oof(router, args.router, data), est, data)
    save_router(router, out, info)
    _export_encoder(out)
    print(
        f"trained {args.router} on {len(data)} rows x {len(data.models)} models in {seconds:.1f}s"
    )
    for row in getattr(router, "cv_results_", []):
        params = json.dumps(row["params"], sort_keys=True)
        held = row.get("aiq_tasks_held_out")
        tasks = f"  tasks held out {held:.4f}" if held is not None else ""
        print(
            f"  cv  {row['router']:<9} AIQ {row['aiq']:.4f}{tasks}  "
            f"{row['seconds']:>6.1f}s  {params}"
        )
    _report_auto(router)
    print(f"wrote {out}")
    return 0


def _report_auto(router: Any) -> None:
    """What ``auto`` decided and what its time budget cut: said, never silent."""
    skipped = getattr(router, "skipped_", None)
    if skipped:
        names = ", ".join(r["router"] + json.dumps(r["params"], sort_keys=True) for r in skipped)
        print(
            f"  the time budget ({router.time_budget_s:g} s after encoding) cut "
            f"{len(skipped)} candidate(s): {names} (every family was tried; "
            "raise --time-budget to try them)"
        )
    decision = getattr(router, "decision_", None)
    if decision:
        low, high = decision["gain_interval"]
        print(
            f"auto selected: {router.best_name_} (best candidate {decision['best_candidate']}, "
            f"cross-fitted gain over the single models {decision['gain_over_single_models']:+.4f}, "
            f"interval {low:+.4f} .. {high:+.4f}): {decision['why']}"
        )
        print(f"  criterion: {decision['criterion']}")
        shrink = decision.get("shrinkage")
        if shrink:
            print(f"  shrinkage toward each model's mean: factor {shrink['factor']:g}")


def cmd_predict(args: argparse.Namespace) -> int:
    from polyroute.eval.io import load_prompts
    from polyroute.routers.artifact import load_router

    router = load_router(args.router)
    rows = load_prompts(args.data)
    pred = router.predict([r.prompt for r in rows]) if rows else np.zeros((0, 0))
    lines = []
    for r, q in zip(rows, pred, strict=True):
        predicted = {m: round(float(v), 6) for m, v in zip(router.models_, q, strict=True)}
        lines.append(json.dumps({"id": r.id, "predicted": predicted}))
    text = "".join(line + "\n" for line in lines)
    if args.out == "-":
        sys.stdout.write(text)
    else:
        try:
            Path(args.out).write_text(text)
        except OSError as exc:
            raise ConfigError(f"--out {args.out}: cannot write ({exc.strerror})") from None
        print(f"wrote {len(rows)} predictions to {args.out}", file=sys.stderr)
    return 0
