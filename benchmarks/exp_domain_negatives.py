"""Experiment: unrelated prompts as extra out-of-scope rows for the ``domain`` signal.

CLINC150's train split has only 100 ``oos`` rows, and the shipped domain model's
validation out-of-scope recall sits on the issue's floor (0.85, 85 of 100).  This adds
the benign prompts of the injection *train* split (general questions and statements,
none a CLINC intent; disjoint from the injection validation prompts that
``bench_signals.py`` scores as "unrelated") as ``oos`` rows to every fit, the
cross-validation folds' too, and never scores them: the centroid weight and the cut
still come from 5-fold CV on CLINC train at out-of-fold out-of-scope recall >= 0.9, as
``polyroute train-signal domain --min-oos-recall 0.9`` does.  Judged on CLINC
validation (in-scope accuracy, out-of-scope recall) and on the unrelated sets of
``bench_signals.py`` (1,500 dcrouter prompts, the injection validation split's benign
prompts).  Protocol fixed before the run: keep it if CV in-scope accuracy does not drop
and validation out-of-scope recall rises, with in-scope accuracy >= 0.95.

    POLYROUTE_CACHE_DIR=... python benchmarks/exp_domain_negatives.py [--encoders minilm,static]
        [--sizes 0,1500,all] [--min-recall 0.9,0.92]

Outcome (fourth session; BENCHMARKS.md, "unrelated prompts as out-of-scope rows"): at the
0.9 floor the extra rows raised CV in-scope accuracy (MiniLM 0.977 -> 0.982) and
validation in-scope accuracy (0.964 -> 0.970), but validation out-of-scope recall stayed
0.86, so the rule above was not met as written.  At the 0.92 floor they gave 0.964 /
0.92 against 0.961 / 0.90 without them; the shipped models use that floor, a choice
made after seeing these validation numbers.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

import numpy as np
from _cache_data import embed
from bench_signals import GUARDS, clinc, unrelated

from polyroute.embed import make_encoder
from polyroute.signals.textmodel import OUT_OF_SCOPE
from polyroute.signals.textmodel_train import (
    _choose_weight,
    _domain_fit,
    _folds,
    domain_metrics,
)

C = 10.0


def vectors(encoder: str, texts: list[str], fit_on: list[str]) -> Any:
    if encoder == "minilm":
        return embed("minilm", texts)
    return make_encoder(encoder).fit(fit_on).encode(texts)


def negatives(n: int | None) -> list[str]:
    rows = [json.loads(line) for line in (GUARDS / "injection" / "train.jsonl").open()]
    benign = sorted({r["text"] for r in rows if r["label"] == "benign"})
    if n is None or n >= len(benign):
        return benign
    pick = np.random.default_rng(0).choice(len(benign), n, replace=False)
    return [benign[i] for i in sorted(pick.tolist())]


def run(encoder: str, extra: list[str], min_recall: float = 0.9) -> dict[str, Any]:
    train, val = clinc("train"), clinc("validation")
    sets = unrelated()
    x = vectors(encoder, train.texts, train.texts)
    xe = vectors(encoder, extra, train.texts) if extra else x[:0]
    y = train.intents or train.labels
    group_of = dict(zip(y, train.labels, strict=True))
    group_of.setdefault("oos", OUT_OF_SCOPE)
    ye = ["oos"] * len(extra)
    folds = []
    for tr, te in _folds(y):
        xs = np.vstack([x[tr], xe])
        folds.append((_domain_fit(xs, [y[i] for i in tr] + ye, C, encoder, group_of), te))
    weight, cut, oof = _choose_weight(folds, x, train.labels, min_recall)
    full = _domain_fit(np.vstack([x, xe]), list(y) + ye, C, encoder, group_of)
    # the centroids of in-scope intents only matter; the oos centroid takes the extras too
    model = type(full)(**{**full.__dict__, "threshold": round(cut, 6),
                          "centroid_weight": weight,
                          "centroids": full.centroids if weight > 0 else None})  # fmt: skip
    out: dict[str, Any] = {
        "encoder": encoder,
        "extra": len(extra),
        "min_recall": min_recall,
        "weight": weight,
        "cut": round(cut, 4),
        "cv": domain_metrics(oof.labels, train.labels),
    }
    out["validation"] = domain_metrics(
        model.predict_labels(vectors(encoder, val.texts, train.texts)), val.labels
    )
    for name, texts in sets.items():
        pred = model.predict_labels(vectors(encoder, texts, train.texts))
        out[f"unrelated_{name}"] = round(float(np.mean([p == OUT_OF_SCOPE for p in pred])), 4)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--encoders", default="minilm,static")
    parser.add_argument("--sizes", default="0,1500,all", help="extra rows per run")
    parser.add_argument("--min-recall", default="0.9", help="CV out-of-scope recall floors")
    args = parser.parse_args()
    for encoder in args.encoders.split(","):
        for size in args.sizes.split(","):
            n = None if size == "all" else int(size)
            for floor in args.min_recall.split(","):
                extra = negatives(n) if n != 0 else []
                print(json.dumps(run(encoder, extra, float(floor))), flush=True)


if __name__ == "__main__":
    main()
