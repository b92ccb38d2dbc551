"""Experiment: naive-Bayes-weighted n-gram features for the ``jailbreak`` signal (NB-LR).

Each hashed n-gram column (``polyroute.embed_ngram``, the shipped model's features) is
scaled by its log-count ratio between injection and benign training rows (Wang &
Manning's NB-SVM, with LR), which folds into an ordinary LR over the same features at
serving (coef x ratio).  Protocol, as for the shipped model: the 298 benign look-alikes
join every fit and are never scored; C is chosen by 5-fold CV on train (recall at 3 %
out-of-fold benign false positives); the probes are read only after that, at each
model's 3 %-on-validation threshold, and at 2 / 1.5 / 1 % for the trade-off curve.

    python benchmarks/exp_jailbreak_nb.py      # ~4 min on 2 cores
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import scipy.sparse as sp
from bench_jailbreak_heldout import INJECTION, PROBES, SETS, read_split
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold

from polyroute.embed import make_encoder
from polyroute.signals.textmodel import default_model_dir
from polyroute.signals.textmodel_train import jailbreak_threshold

LOOKALIKES = default_model_dir("jailbreak").parent / "jailbreak-lookalikes.jsonl"
CANDIDATES = (("plain", 16.0), ("plain", 4.0), ("nb", 0.25), ("nb", 1.0), ("nb", 4.0), ("nb", 16.0))


def ratio(x: Any, y: Any, alpha: float = 1.0) -> Any:
    """Each column's log-count ratio (binarised counts, add-``alpha`` smoothing)."""
    b = x.copy()
    b.data[:] = 1.0
    p = np.asarray(b[y].sum(0)).ravel() + alpha
    q = np.asarray(b[~y].sum(0)).ravel() + alpha
    return np.log((p / p.sum()) / (q / q.sum()))


def fit(kind: str, c: float, x: Any, y: Any) -> tuple[LogisticRegression, Any]:
    scale = sp.diags(ratio(x, y)) if kind == "nb" else sp.identity(x.shape[1])
    return LogisticRegression(C=c, max_iter=3000).fit(x @ scale, y), scale


def recall_at(scores: Any, y: Any, fpr: float = 0.03) -> float:
    neg = np.sort(scores[~y])[::-1]
    k = int(np.floor(fpr * len(neg)))
    return float((scores[y] > (neg[k] if k < len(neg) else -np.inf)).mean())


def main() -> None:
    train, val = read_split(INJECTION / "train.jsonl"), read_split(INJECTION / "validation.jsonl")
    probe = read_split(PROBES)
    look = [json.loads(line)["text"] for line in LOOKALIKES.open()]
    enc = make_encoder("ngram")
    x, xl = sp.csr_matrix(enc.encode(train.texts)), sp.csr_matrix(enc.encode(look))
    xv, xp = sp.csr_matrix(enc.encode(val.texts)), sp.csr_matrix(enc.encode(probe.texts))
    y, no = train.positive, np.zeros(len(look), dtype=bool)
    folds = StratifiedKFold(5, shuffle=True, random_state=0).split(np.zeros(len(y)), y)
    splits = list(folds)
    print("| model | C | CV recall @3 % | val F1 | val FP target | wild | indirect "
          "| hard benign | plain benign |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|")
    for kind, c in CANDIDATES:
        oof = np.zeros(len(y))
        for tr, te in splits:
            lr, scale = fit(kind, c, sp.vstack([x[tr], xl]), np.concatenate([y[tr], no]))
            oof[te] = lr.predict_proba(x[te] @ scale)[:, 1]
        lr, scale = fit(kind, c, sp.vstack([x, xl]), np.concatenate([y, no]))
        sv = lr.predict_proba(xv @ scale)[:, 1]
        sprobe = lr.predict_proba(xp @ scale)[:, 1]
        for target in (0.03, 0.02, 0.015, 0.01):
            thr = jailbreak_threshold(sv, val.positive, target)
            flagged = sv >= thr
            f1 = 2 * (flagged & val.positive).sum() / (flagged.sum() + val.positive.sum())
            got = sprobe >= thr
            n = {
                s: f"{int(got[[t == s for t in probe.sets]].sum())}/{probe.sets.count(s)}"
                for s in SETS
            }
            print(f"| {kind} | {c:g} | {recall_at(oof, y):.4f} | {f1:.4f} | {target:.1%} | "
                  f"{n['wild_jailbreak']} | {n['indirect_injection']} | {n['hard_benign']} | "
                  f"{n['plain_benign']} |", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
