"""Quality-at-cost of learned routers on dcrouter by 5-fold CV (an iteration aid).

    python benchmarks/exp_quality.py knn logistic stack knn:encoder=minilm ...

Prints, per router: AIQ, quality at the best single model's cost, and the
smallest cost fraction (of the best single model's) that reaches its quality.
Out-of-fold predictions are saved to $TMPDIR/oof_<router>.npy.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from polyroute.eval.evaluate import make_router
from polyroute.routers.learned._curve import aiq, curve, envelope
from polyroute.routers.learned._optim import kfold_indices

sys.path.insert(0, "benchmarks")
from _data import load


def oof(name: str, ds, k: int = 5):  # type: ignore[no-untyped-def]
    pred = np.zeros_like(ds.scores)
    est = np.zeros_like(ds.costs)
    for train, test in kfold_indices(len(ds), k, seed=0):
        r = make_router(name).fit(ds.subset(train))
        sub = ds.subset(test)
        pred[test] = r.predict_dataset(sub)
        est[test] = r.estimate_costs(sub.prompts)
    return pred, est


def report(name: str, pred, est, ds) -> None:  # type: ignore[no-untyped-def]
    best = int(ds.scores.mean(0).argmax())
    bq, bc = ds.scores[:, best].mean(), ds.costs[:, best].mean()
    cs, qs = curve(pred, ds.scores, ds.costs, est)
    q_at = float(envelope(cs, qs, np.array([bc]))[0])
    ok = np.sort(cs[qs >= bq])
    frac = ok[0] / bc if ok.size else float("nan")
    print(
        f"{name:12s} AIQ={aiq(pred, ds.scores, ds.costs, est):.4f} "
        f"q@best_cost={q_at:.4f} (+{q_at - bq:+.4f}) cost_to_match={frac:.3f} q_max={qs.max():.4f}"
    )


def main() -> None:
    ds = load()
    for name in sys.argv[1:]:
        t = time.time()
        pred, est = oof(name, ds)
        report(name, pred, est, ds)
        np.save(Path(tempfile.gettempdir()) / f"oof_{name}.npy", pred)
        print(f"  ({time.time() - t:.1f}s)")


if __name__ == "__main__":
    main()
