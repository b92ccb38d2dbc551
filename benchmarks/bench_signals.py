"""The ``jailbreak`` and ``domain`` signal models on the shared guard data.

For each encoder (static, minilm) and a TF-IDF (word 1-2-grams) + logistic-regression
baseline, trained on the train split and judged on the validation split:

- jailbreak: precision, recall, F1 and false-positive rate at the threshold that
  keeps the benign false-positive rate on validation at most 3 %;
- domain (CLINC150): in-scope accuracy and out-of-scope recall, the out-of-scope
  cut chosen by 5-fold cross-validation on train (with its ``oos`` rows), as
  ``polyroute train-signal`` does (maximising in-scope accuracy + out-of-scope recall,
  and again with ``--min-oos-recall 0.9``); the encoder models are softmaxes over
  the 150 intents summed per domain, mixed with the cosine to the intent centroids;
  plus the share of unrelated prompts called ``out_of_scope`` (below).

Plus the per-prompt latency of the shipped signals (``compute`` on one request, one
thread).

    python benchmarks/bench_signals.py [--encoders static,minilm,tfidf] [--latency-n 500]

``--domain-models DIR,DIR`` judges saved domain models instead (say the previous and
the new shipped default; ``default`` is the shipped one), without training: the
validation metrics, the unrelated prompts' out-of-scope rate and ``compute`` latency.
Unrelated prompts: 1,500 dcrouter prompts (maths, code, science, reading; a fixed
sample) and the 1,050 benign prompts of the injection validation split.
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

from polyroute.embed import make_encoder
from polyroute.signals.textmodel import OUT_OF_SCOPE, TextModel
from polyroute.signals.textmodel_train import (
    Rows,
    domain_metrics,
    jailbreak_metrics,
    jailbreak_threshold,
    read_rows,
    train_domain,
    train_jailbreak,
)

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
GUARDS = SHARED / "guards"


def clinc(split: str) -> Rows:
    texts, labels, intents = [], [], []
    for line in (GUARDS / "domains" / "clinc150" / f"{split}.jsonl").read_text().splitlines():
        row = json.loads(line)
        texts.append(row["text"])
        labels.append(row["domain"])
        intents.append(row["intent"])
    return Rows(texts, labels, intents)


def unrelated() -> dict[str, list[str]]:
    """Prompts about none of CLINC150's domains (see the module docstring)."""
    lines = (SHARED / "dcrouter" / "train.jsonl").read_text().splitlines()
    pick = np.random.default_rng(0).permutation(len(lines))[:1500]
    benign = read_rows(GUARDS / "injection" / "validation.jsonl", "jailbreak")
    return {
        "dcrouter": [json.loads(lines[i])["prompt"] for i in pick],
        "benign": [
            t for t, lab in zip(benign.texts, benign.labels, strict=True) if lab == "benign"
        ],
    }


def oos_rates(model: TextModel, sets: dict[str, list[str]]) -> dict[str, float]:
    encoder = make_encoder(model.encoder)
    return {f"unrelated_oos_{name}": round(float(np.mean(
        [p == OUT_OF_SCOPE for p in model.predict_labels(encoder.encode(texts))])), 4)
        for name, texts in sets.items()}  # fmt: skip


def judge_domain_models(dirs: list[str], n: int) -> None:
    from polyroute.signals.textmodel import default_model_dir, load_model

    val, sets = clinc("validation"), unrelated()
    for name in dirs:
        path = default_model_dir("domain") if name == "default" else Path(name)
        model = load_model(path, "domain")
        pred = model.predict_labels(make_encoder(model.encoder).encode(val.texts))
        result = {"model": str(path), "encoder": model.encoder, "threshold": model.threshold,
                  "centroid_weight": model.centroid_weight,
                  **domain_metrics(pred, val.labels), **oos_rates(model, sets),
                  **latency(n, {"domain": str(path)}, ("domain",))}  # fmt: skip
        print(json.dumps(result), flush=True)


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


def latency(
    n: int, models: dict[str, str] | None = None, kinds: tuple[str, ...] = ("jailbreak", "domain")
) -> dict[str, float]:
    from polyroute.signals.domain import DomainSignal
    from polyroute.signals.jailbreak import JailbreakSignal
    from polyroute.types import Request

    prompts = read_rows(GUARDS / "injection" / "validation.jsonl", "jailbreak").texts[:n]
    out = {}
    classes = {"jailbreak": JailbreakSignal, "domain": DomainSignal}
    for name in kinds:
        chosen = (models or {}).get(name)
        signal = classes[name](name, {"model": chosen} if chosen else {})
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
    parser.add_argument("--domain-models", default=None, metavar="DIR,DIR")
    args = parser.parse_args()
    if args.domain_models:
        judge_domain_models(args.domain_models.split(","), args.latency_n)
        return
    inj = GUARDS / "injection"
    jb = (
        read_rows(inj / "train.jsonl", "jailbreak"),
        read_rows(inj / "validation.jsonl", "jailbreak"),
    )
    dom = (clinc("train"), clinc("validation"))
    sets = unrelated()
    for encoder in args.encoders.split(","):
        started = time.perf_counter()
        if encoder == "tfidf":
            result = tfidf_baseline(jb, dom)
        else:
            j = train_jailbreak(jb[0], encoder=encoder, validation=jb[1])
            d = train_domain(dom[0], encoder=encoder, validation=dom[1])
            floor = train_domain(dom[0], encoder=encoder, validation=dom[1], min_oos_recall=0.9)
            result = {"jailbreak": j.metrics, "jailbreak_threshold": j.threshold,
                      "domain": {**d.metrics, **oos_rates(d, sets)},
                      "domain_threshold": d.threshold,
                      "domain_min_oos_recall_0.9": {**floor.metrics, **oos_rates(floor, sets)},
                      "domain_min_oos_recall_0.9_threshold": floor.threshold}  # fmt: skip
        result["seconds"] = round(time.perf_counter() - started, 1)
        print(json.dumps({"encoder": encoder, **result}), flush=True)
    print(json.dumps({"latency": latency(args.latency_n)}), flush=True)


if __name__ == "__main__":
    main()
