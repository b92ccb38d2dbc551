"""The ``jailbreak`` and ``domain`` signal models on the shared guard data.

For each encoder (static, minilm) and a TF-IDF (word 1-2-grams) + logistic-regression
baseline, trained on the train split and judged on the validation split:

- jailbreak: precision, recall, F1 and false-positive rate at the threshold that
  keeps the benign false-positive rate on validation at most 3 %;
- domain (CLINC150): in-scope accuracy and out-of-scope recall, the out-of-scope
  cut chosen by 5-fold cross-validation on train (with its ``oos`` rows), as
  ``polyroute train-signal`` does (maximising in-scope accuracy + out-of-scope recall,
  and again with ``--min-oos-recall 0.85``); the encoder models are softmaxes over
  the 150 intents summed per domain.

Plus the per-prompt latency of the shipped static signals (``compute`` on one
request, one thread).

    python benchmarks/bench_signals.py [--encoders static,minilm,tfidf] [--latency-n 500]
"""

from __future__ import annotations

import os

os.environ.setdefault("RAYON_NUM_THREADS", "1")

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from polyroute.signals.textmodel_train import (
    Rows,
    domain_metrics,
    jailbreak_metrics,
    jailbreak_threshold,
    read_rows,
    train_domain,
    train_jailbreak,
)

GUARDS = Path(__file__).resolve().parents[2] / "shared" / "data" / "guards"


def clinc(split: str) -> Rows:
    texts, labels, intents = [], [], []
    for line in (GUARDS / "domains" / "clinc150" / f"{split}.jsonl").read_text().splitlines():
        row = json.loads(line)
        texts.append(row["text"])
        labels.append(row["domain"])
        intents.append(row["intent"])
    return Rows(texts, labels, intents)


def tfidf_baseline(jb: tuple[Rows, Rows], dom: tuple[Rows, Rows]) -> dict[str, Any]:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_predict

    train, val = jb
    vec = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True)
    lr = LogisticRegression(C=4.0, max_iter=3000).fit(vec.fit_transform(train.texts), train.labels)
    scores = lr.predict_proba(vec.transform(val.texts))[:, 1].astype(np.float32)
    truth = np.asarray(val.labels) == "injection"
    out: dict[str, Any] = {"jailbreak": jailbreak_metrics(scores, truth,
                           jailbreak_threshold(scores, truth, 0.03))}  # fmt: skip
    train, val = dom
    x = vec.fit_transform(train.texts)
    lr = LogisticRegression(C=10.0, max_iter=3000)
    oof = cross_val_predict(lr, x, train.labels, cv=5, method="predict_proba")
    lr.fit(x, train.labels)
    keep = [i for i, c in enumerate(lr.classes_) if c != "out_of_scope"]
    names = np.asarray(lr.classes_)[keep]

    def cut(p: Any, t: float) -> list[str]:
        return [n if s >= t else "out_of_scope" for n, s in
                zip(names[p[:, keep].argmax(1)], p[:, keep].max(1), strict=True)]  # fmt: skip

    best = max(np.unique(np.round(oof[:, keep].max(1), 3)),
               key=lambda t: sum(domain_metrics(cut(oof, t), train.labels).values()))  # fmt: skip
    out["domain"] = domain_metrics(cut(lr.predict_proba(vec.transform(val.texts)), best),
                                   val.labels)  # fmt: skip
    return out


def latency(n: int) -> dict[str, float]:
    from polyroute.signals.domain import DomainSignal
    from polyroute.signals.jailbreak import JailbreakSignal
    from polyroute.types import Request

    prompts = read_rows(GUARDS / "injection" / "validation.jsonl", "jailbreak").texts[:n]
    out = {}
    for name, signal in (
        ("jailbreak", JailbreakSignal("j", {})),
        ("domain", DomainSignal("d", {})),
    ):
        signal.warmup()
        times = []
        for text in prompts:
            request = Request.chat(text)
            start = time.perf_counter()
            signal.compute(request)
            times.append(time.perf_counter() - start)
        out[f"{name}_p50_ms"] = round(float(np.percentile(times, 50)) * 1e3, 4)
        out[f"{name}_p99_ms"] = round(float(np.percentile(times, 99)) * 1e3, 4)
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--encoders", default="static,minilm,tfidf")
    parser.add_argument("--latency-n", type=int, default=500)
    args = parser.parse_args()
    inj = GUARDS / "injection"
    jb = (
        read_rows(inj / "train.jsonl", "jailbreak"),
        read_rows(inj / "validation.jsonl", "jailbreak"),
    )
    dom = (clinc("train"), clinc("validation"))
    for encoder in args.encoders.split(","):
        started = time.perf_counter()
        if encoder == "tfidf":
            result = tfidf_baseline(jb, dom)
        else:
            j = train_jailbreak(jb[0], encoder=encoder, validation=jb[1])
            d = train_domain(dom[0], encoder=encoder, validation=dom[1])
            floor = train_domain(dom[0], encoder=encoder, validation=dom[1], min_oos_recall=0.85)
            result = {"jailbreak": j.metrics, "jailbreak_threshold": j.threshold,
                      "domain": d.metrics, "domain_threshold": d.threshold,
                      "domain_min_oos_recall_0.85": floor.metrics,
                      "domain_min_oos_recall_0.85_threshold": floor.threshold}  # fmt: skip
        result["seconds"] = round(time.perf_counter() - started, 1)
        print(json.dumps({"encoder": encoder, **result}), flush=True)
    print(json.dumps({"latency": latency(args.latency_n)}), flush=True)


if __name__ == "__main__":
    main()
