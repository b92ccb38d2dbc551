"""Speed of the learned routers on this machine.

    python benchmarks/bench_routers.py [--skip-auto]

Measures (1) predict time per single prompt beyond the encoder, for routers fitted
on 10,000 training prompts (dcrouter tiled), (2) MiniLM encoding p50/p90 per
single prompt (no cache), (3) wall time of ``polyroute train --router auto`` on
dcrouter (embedding cache warm), (4) the gateway's whole per-request cost of the
resulting artifact, ``LearnedSelector.order``.  Prints a table.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _data import DCROUTER, load

from polyroute.embed import MiniLMEncoder, make_encoder
from polyroute.routers.base import _blas_limit
from polyroute.routers.learned import get_router
from polyroute.routers.learned._features import features

N_TRAIN = 10_000
ROUTERS = [
    ("knn", {}),
    ("cluster", {}),
    ("logistic", {}),
    ("mlp", {}),
    ("mf", {}),
    ("stack", {"folds": 2}),
]


AUTO_OUT = Path("/tmp/polyroute-bench-auto")


def per_prompt_ms(fn, items, repeat: int = 1) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    times = []
    for item in items:
        t = time.perf_counter()
        for _ in range(repeat):
            fn(item)
        times.append((time.perf_counter() - t) * 1000 / repeat)
    return float(np.percentile(times, 50)), float(np.percentile(times, 90))


def bench_predict(rows: list[tuple[str, str, str]]) -> None:
    ds = load()
    reps = -(-N_TRAIN // len(ds))
    idx = np.tile(np.arange(len(ds)), reps)[:N_TRAIN]
    enc = make_encoder("minilm+tfidf").fit(ds.prompts)
    x_all = features(enc, ds.prompts)
    x, y = x_all[idx], ds.scores[idx]
    costs = ds.costs[idx]
    probes = [x_all[i : i + 1] for i in range(0, len(ds), len(ds) // 200)][:200]
    for name, params in ROUTERS:
        base = get_router(name)(**params)
        t = time.perf_counter()
        base._fit_xy(x, y, costs)
        fit_s = time.perf_counter() - t

        def run(x, base=base):  # type: ignore[no-untyped-def]
            with _blas_limit(1):  # what LearnedRouter.predict does for request-sized batches
                return base._predict_x(x)

        p50, p90 = per_prompt_ms(run, probes, repeat=5)
        rows.append(
            (
                f"predict {name} (beyond encoder)",
                f"{p50:.3f} / {p90:.3f} ms",
                f"fit {fit_s:.1f}s on {N_TRAIN}",
            )
        )
    tf = make_encoder("tfidf").fit(ds.prompts)
    p50, p90 = per_prompt_ms(lambda p: tf.encode([p]), list(ds.prompts[:: len(ds) // 200]))
    rows.append(("encode tfidf, single prompt", f"{p50:.3f} / {p90:.3f} ms", "numpy sparse"))


def bench_minilm(rows: list[tuple[str, str, str]]) -> None:
    ds = load()
    enc = MiniLMEncoder(use_cache=False)
    enc.encode(["warm up"])
    prompts = list(ds.prompts[:: len(ds) // 200])[:200]
    p50, p90 = per_prompt_ms(lambda p: enc.encode([p]), prompts)
    short = [p for p in prompts if len(p) < 400]
    s50, _ = per_prompt_ms(lambda p: enc.encode([p]), short)
    rows.append(
        (
            "encode minilm, single prompt",
            f"{p50:.2f} / {p90:.2f} ms",
            f"p50 {s50:.2f} ms on prompts < 400 chars",
        )
    )


def bench_auto(rows: list[tuple[str, str, str]]) -> None:
    out = AUTO_OUT
    cmd = [sys.executable, "-m", "polyroute", "train", "--data", str(DCROUTER / "train.jsonl")]
    cmd += ["--models", str(DCROUTER / "models.json"), "--router", "auto", "--out", str(out)]
    t = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=os.environ, check=False)
    wall = time.perf_counter() - t
    chosen = [ln for ln in proc.stdout.splitlines() if ln.startswith("auto selected")]
    rows.append(
        (
            "train --router auto (dcrouter)",
            f"{wall:.1f} s",
            chosen[0] if chosen else proc.stderr[-200:],
        )
    )


def bench_selector(rows: list[tuple[str, str, str]]) -> None:
    """The whole per-request cost in the gateway: LearnedSelector.order on the auto artifact."""
    from polyroute.backends import Backend
    from polyroute.selectors.learned import LearnedSelector
    from polyroute.types import Request, Trace

    class NoProvider:
        async def aclose(self) -> None: ...

    ds = load()
    assert ds.prices is not None
    selector = LearnedSelector(str(AUTO_OUT), willingness_to_pay=1e-3)
    candidates = [
        Backend(m, m, NoProvider(), ds.prices[m].input_price_per_mtok,  # type: ignore[arg-type]
                ds.prices[m].output_price_per_mtok)
        for m in ds.models
    ]  # fmt: skip
    prompts = list(ds.prompts[7 :: len(ds) // 100])[:100]
    p50, p90 = per_prompt_ms(
        lambda p: selector.order(candidates, Request.chat(p), Trace("bench")), prompts
    )
    rows.append(
        (
            "LearnedSelector.order (auto artifact)",
            f"{p50:.2f} / {p90:.2f} ms",
            f"{len(candidates)} candidates; encoder + router + estimates",
        )
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--skip-auto", action="store_true")
    args = ap.parse_args()
    rows: list[tuple[str, str, str]] = []
    bench_predict(rows)
    bench_minilm(rows)
    if not args.skip_auto:
        bench_auto(rows)
    if (AUTO_OUT / "manifest.json").is_file():
        bench_selector(rows)
    width = max(len(r[0]) for r in rows)
    print(f"{'measure':<{width}}  {'p50 / p90 (or total)':<22}  note")
    for name, value, note in rows:
        print(f"{name:<{width}}  {value:<22}  {note}")


if __name__ == "__main__":
    main()
