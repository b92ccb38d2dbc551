"""Online routers on replayed streams: the four claims of issue 12, over seeded shuffles.

    python benchmarks/bench_online.py [--data /work/shared/data/dcrouter] [--seeds 5]
        [--train-fraction 0.4] [--markdown benchmarks/RESULTS_online.md]

Per seed: shuffle the dataset, train ``knn:encoder=static`` (the ``polyroute train
--router knn:encoder=static`` artifact) on the first 40 %, replay the other 60 % in
order as the stream (what ``polyroute simulate`` does, in-process).  The willingness
to pay is ``W = 10 x`` the best single model's mean cost on the training part
("the best model's price is worth 0.1 quality"); 3e-3 USD on dcrouter.

- (a) no drift: warm-started LinUCB / Thompson as shipped (the spend anchor holding them
  at the artifact's spend, ``polyroute.online.linear``) and LinUCB with the anchor off,
  vs the static artifact;
- (b) drift: each of the 3 models the artifact chooses most, in turn, keeps 30 % of its
  scores from half way (``--drift MODEL@0.5``); quality and cost over the second half,
  as shipped, with ``forget=0.99`` and with the anchor off;
- (c) cold start: LinUCB / Thompson / EMA from nothing, on the stream and on the whole
  shuffled dataset, vs the best single model in hindsight (utility at the same W);
- (d) budget autopilot: B = 0.4 x the best single model's mean cost; spend vs B and
  quality vs the best single model whose mean cost fits B.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import numpy as np

from polyroute.dataset import RoutingDataset
from polyroute.eval.io import load_dataset
from polyroute.online import (
    BudgetController,
    Drift,
    EMARouter,
    FeatureMaker,
    LinearThompson,
    LinUCB,
    Replay,
    Reward,
    StaticRouter,
    Stream,
    artifact_priors,
    replay,
)
from polyroute.routers.learned.knn import KNNRouter

DIM = 32
BUDGET_FRACTION = 0.4


def _row(r: Replay, rows: slice = slice(None)) -> dict[str, float]:
    return {
        "q": float(r.quality[rows].mean()),
        "c": float(r.cost[rows].mean()),
        "u": float(r.utility[rows].mean()),
    }


def _warm(kind: str, models: tuple[str, ...], w: float, seed: int, **kw: Any) -> Any:
    cls = LinearThompson if kind == "thompson" else LinUCB
    return cls(models, DIM + 2, reward=Reward(w), warm_start=True, seed=seed, **kw)


def run_seed(data: RoutingDataset, x_all: np.ndarray, seed: int, frac: float) -> dict[str, Any]:
    perm = np.random.default_rng(seed).permutation(len(data))
    cut = int(frac * len(data))
    train, stream = data.subset(perm[:cut]), data.subset(perm[cut:])
    x = x_all[perm[cut:]]
    art = KNNRouter(encoder="static").fit(train)
    q, c = artifact_priors(art, stream.prompts, stream.models, "bench")
    w = 10.0 * float(train.costs.mean(0)[np.argmax(train.scores.mean(0))])
    models, half = stream.models, slice(len(stream) // 2, None)
    out: dict[str, Any] = {"w": w, "rows": len(stream)}
    base = Stream(stream, x, q, c)
    static = replay(StaticRouter(models, Reward(w)), base)
    out["a"] = {"static": _row(static)}
    for kind in ("linucb", "thompson"):
        out["a"][kind] = _row(replay(_warm(kind, models, w, seed), base))
    out["a"]["linucb_free"] = _row(replay(_warm("linucb", models, w, seed, spend_anchor=0), base))
    top = np.argsort(-np.bincount(static.picks, minlength=len(models)))[:3]
    out["b"] = {}
    for m in top:
        drifted = Drift(models[m], 0.5).apply(stream, seed)
        s = Stream(drifted, x, q, c)
        row = {"static": _row(replay(StaticRouter(models, Reward(w)), s), half)}
        row["linucb"] = _row(replay(_warm("linucb", models, w, seed), s), half)
        row["linucb_forget"] = _row(replay(_warm("linucb", models, w, seed, forget=0.99), s), half)
        free = replay(_warm("linucb", models, w, seed, spend_anchor=0), s)
        row["linucb_free"] = _row(free, half)
        out["b"][models[m]] = row
    out["c"] = _cold(data, x_all, perm, stream, x, w, seed)
    out["d"] = _budget(train, stream, base, w, seed)
    return out


def _cold(
    data: RoutingDataset,
    x_all: np.ndarray,
    perm: np.ndarray,
    stream: RoutingDataset,
    x: np.ndarray,
    w: float,
    seed: int,
) -> dict[str, Any]:
    res: dict[str, Any] = {}
    for name, part, xs in (("stream", stream, x), ("all", data.subset(perm), x_all[perm])):
        single = part.scores.mean(0) - part.costs.mean(0) / w
        row = {"best_single": float(single.max()), "rows": len(part)}
        routers = {
            "linucb": LinUCB(part.models, DIM + 2, reward=Reward(w), seed=seed),
            "thompson": LinearThompson(part.models, DIM + 2, reward=Reward(w), seed=seed),
            "ema": EMARouter(part.models, reward=Reward(w), seed=seed),
        }
        for key, router in routers.items():
            row[key] = _row(replay(router, Stream(part, xs)))
        res[name] = row
    return res


def _budget(
    train: RoutingDataset, stream: RoutingDataset, base: Stream, w: float, seed: int
) -> dict[str, Any]:
    best = int(np.argmax(train.scores.mean(0)))
    b = BUDGET_FRACTION * float(train.costs.mean(0)[best])
    mean_q, mean_c = stream.scores.mean(0), stream.costs.mean(0)
    fits = np.flatnonzero(mean_c <= b)
    res: dict[str, Any] = {"budget": b, "best_fitting": float(mean_q[fits].max())}
    models = stream.models
    routers = {
        "static": StaticRouter(models, Reward(w)),
        "linucb_warm": _warm("linucb", models, w, seed),
        "linucb_cold": LinUCB(models, DIM + 2, reward=Reward(w), seed=seed),
    }
    for key, router in routers.items():
        stream_ = base if key != "linucb_cold" else Stream(stream, base.x)
        r = replay(router, stream_, BudgetController(b, w))
        res[key] = {**_row(r), "spend_vs_budget": float(r.cost.mean() / b - 1.0)}
    return res


def _mean(runs: list[dict[str, Any]], *path: str) -> float:
    vals = []
    for run in runs:
        node: Any = run
        for key in path:
            node = node[key]
        vals.append(node)
    return float(np.mean(vals))


def report(runs: list[dict[str, Any]], name: str) -> str:
    lines = [
        f"### {name}: {len(runs)} seeds, stream {runs[0]['rows']} rows, W = {runs[0]['w']:.3g}",
        "",
    ]
    lines += _report_a(runs) + _report_b(runs) + _report_c(runs) + _report_d(runs)
    return "\n".join(lines) + "\n"


def _report_a(runs: list[dict[str, Any]]) -> list[str]:
    out = [
        "(a) no drift, whole stream (mean over seeds); linucb and thompson as shipped (the "
        "spend anchor on), linucb_free = the anchor off (spend_anchor=0)",
        "",
        "| router | quality | cost (USD) | utility | dq vs static (pts) | cost vs static |",
        "|---|---|---|---|---|---|",
    ]
    sq, sc = _mean(runs, "a", "static", "q"), _mean(runs, "a", "static", "c")
    for k in ("static", "linucb", "thompson", "linucb_free"):
        q, c, u = (_mean(runs, "a", k, f) for f in "qcu")
        out.append(
            f"| {k} | {q:.4f} | {c:.3e} | {u:.4f} | {100 * (q - sq):+.2f} "
            f"| {100 * (c / sc - 1):+.1f} % |"
        )
    out.append("")
    for k in ("linucb", "linucb_free"):
        per = [100 * (r["a"][k]["q"] - r["a"]["static"]["q"]) for r in runs]
        cost = [100 * (r["a"][k]["c"] / r["a"]["static"]["c"] - 1) for r in runs]
        out.append(
            f"- per seed, {k}: dq (points) {', '.join(f'{v:+.2f}' for v in per)}; "
            f"dc {', '.join(f'{v:+.1f} %' for v in cost)}"
        )
    return [*out, ""]


def _report_b(runs: list[dict[str, Any]]) -> list[str]:
    out = [
        "(b) drift at 0.5: second half; dq = quality minus the static artifact's (points), "
        "dc = cost relative to the static artifact's",
        "",
        "| seed | drifted model | static q | linucb q | dq | dc | forget=0.99: dq | dc "
        "| anchor off: dq | dc |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    summary: dict[str, list[tuple[float, float]]] = {}
    for i, run in enumerate(runs):
        for model, row in run["b"].items():
            s = row["static"]
            cells = [f"| {i} | {model} | {s['q']:.4f} | {row['linucb']['q']:.4f}"]
            for key in ("linucb", "linucb_forget", "linucb_free"):
                dq, dc = 100 * (row[key]["q"] - s["q"]), 100 * (row[key]["c"] / s["c"] - 1)
                summary.setdefault(key, []).append((dq, dc))
                cells.append(f"{dq:+.2f} | {dc:+.1f} %")
            out.append(" | ".join(cells) + " |")
    out.append("")
    for key, vals in summary.items():
        both = sum(dq >= 3 and dc <= 0 for dq, dc in vals)
        gain = sum(dq >= 3 for dq, _ in vals)
        out.append(
            f"- {key}: dq >= 3 points in {gain}/{len(vals)} cases, and also at no higher cost "
            f"in {both}/{len(vals)}; mean dq {np.mean([v[0] for v in vals]):+.2f}, "
            f"mean dc {np.mean([v[1] for v in vals]):+.1f} %"
        )
    return [*out, ""]


def _report_c(runs: list[dict[str, Any]]) -> list[str]:
    out = [
        "(c) cold start: utility minus the best single model's in hindsight "
        "(points, mean over seeds; min .. max)",
        "",
        "| stream | rows | best single utility | linucb | thompson | ema |",
        "|---|---|---|---|---|---|",
    ]
    for part in ("stream", "all"):
        cells = []
        for k in ("linucb", "thompson", "ema"):
            d = [100 * (r["c"][part][k]["u"] - r["c"][part]["best_single"]) for r in runs]
            cells.append(f"{np.mean(d):+.2f} ({min(d):+.2f} .. {max(d):+.2f})")
        rows, best = runs[0]["c"][part]["rows"], _mean(runs, "c", part, "best_single")
        out.append(f"| {part} | {rows} | {best:.4f} | " + " | ".join(cells) + " |")
    return [*out, ""]


def _report_d(runs: list[dict[str, Any]]) -> list[str]:
    out = [
        f"(d) budget autopilot, B = {BUDGET_FRACTION} x best single model's cost "
        f"(B = {runs[0]['d']['budget']:.3e} on seed 0)",
        "",
        "| router | quality | spend vs B (mean; worst seed) | best single fitting B: quality |",
        "|---|---|---|---|",
    ]
    for k in ("static", "linucb_warm", "linucb_cold"):
        sv = [100 * r["d"][k]["spend_vs_budget"] for r in runs]
        worst = max(sv, key=abs)
        out.append(
            f"| {k} | {_mean(runs, 'd', k, 'q'):.4f} | {np.mean(sv):+.2f} % ({worst:+.2f} %) | "
            f"{_mean(runs, 'd', 'best_fitting'):.4f} |"
        )
    return [*out, ""]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default="/work/shared/data/dcrouter")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--train-fraction", type=float, default=0.4)
    ap.add_argument("--markdown", default=None, help="append the tables to this file")
    args = ap.parse_args()
    data = load_dataset(args.data)
    start = time.monotonic()
    x_all = FeatureMaker(DIM).transform(data.prompts)
    runs = [run_seed(data, x_all, s, args.train_fraction) for s in range(args.seeds)]
    text = report(runs, Path(args.data).name) + f"\n({time.monotonic() - start:.0f} s)\n"
    print(text)
    if args.markdown:
        with Path(args.markdown).open("a") as fh:
            fh.write(text + "\n")


if __name__ == "__main__":
    main()
