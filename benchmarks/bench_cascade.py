"""Cascades (and majority votes) tuned on recorded answers, judged on held-out rows.

    python benchmarks/bench_cascade.py                 # 5 x 5-fold CV, ~6 minutes on 2 cores
    python benchmarks/bench_cascade.py --repeats 1     # one 5-fold pass

Data: ``../shared/data/cascades/{mc,verify}`` (9 models' recorded answers, scores,
costs and confidences; read in place, never copied).  For every outer fold the tuners
see the training rows only, and the cascade they choose is *run* on the held-out
rows' recorded answers (each stage's recorded confidence against its threshold):

- best single: the model of highest mean score on the training rows;
- cascade F: ``fit_cascade`` (smoothed thresholds; the chain of best smoothed
  objective, kept if an inner 2 x 5-fold CV prefers it to the best single model; what
  ``polyroute train --plan cascade --target-cost-fraction F`` runs);
- grid search F: the naive baseline, chain and thresholds of best exact result on
  the training rows;
- hindsight: plain grid search on *every* row, scored on the same rows (an upper
  bound no tuner can reach): quality at the best single model's cost, and the cost
  at which it matches the best single model's quality;
- vote k (mc/ only): majority vote of the k models of best training score (ties: the
  answer of the best of them); cost = the sum of their costs;
- leave-task-out: tuned on some tasks, judged on the task left out.

Cost fractions are of the reference model's (the best single model on all rows) cost
on the same held-out rows; the last column divides by the cost of each fold's
best single model as the tuner saw it (the one its ``F`` refers to: on verify/,
llama3.1-405b and gpt-4o tie at 0.888, and the training folds pick either).
Writes ``benchmarks/RESULTS_cascade.md``.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from polyroute.jsonio import json_lines
from polyroute.plans.cascade_data import CascadeData, load_cascade_data
from polyroute.plans.cascade_fit import (
    Target,
    best_single,
    candidate_chains,
    fit_cascade,
    grid_search,
)
from polyroute.plans.cascade_fit import run_stages as _run
from polyroute.plans.cascade_model import grid_curve, threshold_grid

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "cascades"
SETS = (("mc", "logprob_mean"), ("verify", "verify"))
FRACTIONS = (1.0, 0.5)
OUT = Path(__file__).resolve().parent / "RESULTS_cascade.md"


def _votes(path: Path, models: tuple[str, ...]) -> np.ndarray:
    """Per row and model: the normalised answer (for majority votes)."""
    rows = [r for _, r in json_lines(path / "train.jsonl")]
    return np.array(
        [[str(r["answers"].get(m, "")).strip().upper()[:1] for m in models] for r in rows]
    )


def _vote(train: CascadeData, test: CascadeData, answers: np.ndarray, k: int) -> tuple[Any, Any]:
    order = np.argsort(-train.scores.mean(axis=0), kind="stable")[:k]
    q = np.zeros(len(test))
    for i in range(len(test)):
        counts = Counter(answers[i, order])
        top = max(counts.values())
        winner = next(a for a in answers[i, order] if counts[a] == top)  # best model first
        right = [j for j in order if answers[i, j] == winner]
        q[i] = test.scores[i, right[0]]
    return q, test.costs[:, order].sum(axis=1)


def _fold(args: tuple[str, str, np.ndarray, np.ndarray]) -> dict[str, tuple[Any, Any]]:
    name, statistic, train_idx, test_idx = args
    data = load_cascade_data(SHARED / name, statistic)
    train, test = data.subset(train_idx), data.subset(test_idx)
    out: dict[str, tuple[Any, Any]] = {}
    j = best_single(train)
    out["best single (chosen on train)"] = (test.scores[:, j], test.costs[:, j])
    for f in FRACTIONS:
        fit = fit_cascade(train, Target(cost_fraction=f), seed=1)
        out[f"cascade F={f:g}"] = _run(test, fit.stages)
        stages, _, _ = grid_search(train, Target(cost_fraction=f))
        out[f"grid search F={f:g}"] = _run(test, stages)
    if name == "mc":
        answers = _votes(SHARED / name, data.models)[test_idx]
        for k in (3, 5):
            out[f"vote top-{k}"] = _vote(train, test, answers, k)
    return out


def _cv(name: str, statistic: str, folds: int, repeats: int, workers: int) -> list[list[str]]:
    data = load_cascade_data(SHARED / name, statistic)
    ref = best_single(data)
    rng = np.random.default_rng(2026)
    jobs = []
    for _ in range(repeats):
        parts = np.array_split(rng.permutation(len(data)), folds)
        for k in range(folds):
            train = np.sort(np.concatenate([p for i, p in enumerate(parts) if i != k]))
            jobs.append((name, statistic, train, np.sort(parts[k]), parts[k]))
    with ProcessPoolExecutor(workers) as pool:
        results = list(pool.map(_fold, [j[:4] for j in jobs]))
    ref_q = np.concatenate([data.scores[j[3], ref] for j in jobs])
    ref_c = np.concatenate([data.costs[j[3], ref] for j in jobs])
    n_per = [len(j[3]) for j in jobs]
    train_best_c = np.concatenate([r["best single (chosen on train)"][1] for r in results])
    rows = [
        [
            f"reference: {data.models[ref]} (best on all rows)",
            f"{ref_q.mean():.4f}",
            "",
            f"{1e6 * ref_c.mean():.1f}",
            "1.000",
            f"{ref_c.mean() / train_best_c.mean():.3f}",
        ]
    ]
    for method in results[0]:
        q = np.concatenate([r[method][0] for r in results])
        c = np.concatenate([r[method][1] for r in results])
        diffs = _per_fold(q - ref_q, n_per)
        se = float(np.std(diffs, ddof=1) / np.sqrt(len(diffs))) if len(diffs) > 1 else 0.0
        rows.append(
            [
                method,
                f"{q.mean():.4f}",
                f"{100 * (q.mean() - ref_q.mean()):+.2f} ± {100 * se:.2f}",
                f"{1e6 * c.mean():.1f}",
                f"{c.mean() / ref_c.mean():.3f}",
                f"{c.mean() / train_best_c.mean():.3f}",
            ]
        )
    return rows


def _per_fold(values: np.ndarray, sizes: list[int]) -> np.ndarray:
    cuts = np.cumsum(sizes)[:-1]
    return np.array([part.mean() for part in np.split(values, cuts)])


def _hindsight(name: str, statistic: str) -> list[str]:
    """Plain grid search on every row, judged on the same rows (an upper bound)."""
    data = load_cascade_data(SHARED / name, statistic)
    ref = best_single(data)
    ref_q, ref_c = data.scores[:, ref].mean(), data.costs[:, ref].mean()
    best_q, min_c = ref_q, ref_c
    for chain in candidate_chains(data, 3):
        grids = [threshold_grid(data.confidence[:, j], 50) for j in chain[:-1]]
        q, c, _ = grid_curve(data.scores, data.costs, data.confidence, chain, grids, mode="hard")
        if np.any(c <= ref_c):
            best_q = max(best_q, float(q[c <= ref_c].max()))
        if np.any(q >= ref_q):
            min_c = min(min_c, float(c[q >= ref_q].min()))
    return [
        name,
        f"{data.models[ref]} {ref_q:.4f}",
        f"{best_q:.4f} ({100 * (best_q - ref_q):+.2f})",
        f"{min_c / ref_c:.3f}",
    ]


def _leave_task_out(name: str, statistic: str) -> list[list[str]]:
    data = load_cascade_data(SHARED / name, statistic)
    assert data.tasks is not None
    tasks = np.array(data.tasks)
    rows = []
    for task in sorted(set(data.tasks)):
        train = data.subset(np.flatnonzero(tasks != task))
        test = data.subset(np.flatnonzero(tasks == task))
        j = best_single(train)
        ref_q, ref_c = test.scores[:, j].mean(), test.costs[:, j].mean()
        cells = [f"{name}: {task}", f"{data.models[j]} {ref_q:.4f}"]
        for f in FRACTIONS:
            fit = fit_cascade(train, Target(cost_fraction=f), seed=1)
            q, c = _run(test, fit.stages)
            cells.append(
                f"{q.mean():.4f} ({100 * (q.mean() - ref_q):+.2f}) @ {c.mean() / ref_c:.2f}"
            )
        rows.append(cells)
    return rows


def _table(head: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--folds", type=int, default=5, help="outer folds (default 5)")
    ap.add_argument("--repeats", type=int, default=5, help="outer repeats (default 5)")
    ap.add_argument("--workers", type=int, default=2, help="processes (default 2)")
    ap.add_argument("--no-write", action="store_true", help="print only")
    args = ap.parse_args()
    start = time.monotonic()
    parts = [
        "# Cascades and votes tuned on recorded answers\n",
        "Produced by:\n\n```\npython benchmarks/bench_cascade.py"
        + ("" if args.repeats == 5 and args.folds == 5 else f" --repeats {args.repeats}")
        + "\n```\n",
        (__doc__ or "").split("\n\n", 2)[2].split("Writes")[0].strip() + "\n",
    ]
    head = [
        "method",
        "quality",
        "vs reference (points, ± fold SE)",
        "cost µUSD",
        "cost fraction",
        "of train-best's cost",
    ]
    for name, statistic in SETS:
        rows = _cv(name, statistic, args.folds, args.repeats, args.workers)
        parts.append(
            f"## {name}/ ({statistic}), {args.repeats} x {args.folds}-fold CV\n\n"
            + _table(head, rows)
            + "\n"
        )
    parts.append(
        "## Hindsight (plain grid search on every row, scored on the same rows)\n\n"
        + _table(
            ["data", "best single", "best quality at its cost", "cost fraction to match it"],
            [_hindsight(n, s) for n, s in SETS],
        )
        + "\n"
    )
    lto = [r for n, s in SETS for r in _leave_task_out(n, s)]
    parts.append(
        "## Leave-task-out (tuned on the other tasks; quality (points vs best single) @ cost "
        "fraction)\n\n"
        + _table(
            ["held-out task", "best single (of train tasks)", "cascade F=1", "cascade F=0.5"], lto
        )
        + "\n"
    )
    parts.append(f"Wall time: {time.monotonic() - start:.0f} s on {args.workers} processes.\n")
    text = "\n".join(parts)
    sys.stdout.write(text)
    if not args.no_write:
        OUT.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
