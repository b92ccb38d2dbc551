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

    python benchmarks/bench_signals.py [--encoders static,minilm,tfidf,cascade] [--latency-n 500]
        [--latency-set validation|dcrouter128]

``cascade`` trains the domain cascade (static, then MiniLM when the static model is
unsure; ``polyroute.signals.cascade``) and reports the share of prompts sent to MiniLM.

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
from collections.abc import Callable
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


def judge_domain_models(dirs: list[str], n: int, latency_set: str) -> None:
    from polyroute.signals.cascade import is_cascade
    from polyroute.signals.textmodel import default_model_dir

    val, sets = clinc("validation"), unrelated()
    for name in dirs:
        path = default_model_dir("domain") if name == "default" else Path(name)
        label = labeller(path)
        pred, share = label(val.texts)
        result = {
            "model": str(path),
            "cascade": is_cascade(path),
            **domain_metrics(pred, val.labels),
            "accurate_share_validation": share,
        }
        for set_name, texts in sets.items():
            got, sent = label(texts)
            result[f"unrelated_oos_{set_name}"] = round(float(np.mean(
                [p == OUT_OF_SCOPE for p in got])), 4)  # fmt: skip
            result[f"accurate_share_{set_name}"] = sent
        result.update(latency(n, {"domain": str(path)}, ("domain",), latency_set))
        print(json.dumps(result), flush=True)


def labeller(path: Path) -> Callable[[list[str]], tuple[list[str], float]]:
    """Texts -> the saved domain model's labels (and a cascade's share sent to its
    accurate stage), encoded in batches through the embedding cache."""
    from polyroute.signals.cascade import is_cascade, load_cascade
    from polyroute.signals.cascade_train import cascade_labels
    from polyroute.signals.textmodel import load_model

    if is_cascade(path):
        cascade = load_cascade(path)
        fast, accurate = make_encoder(cascade.fast.encoder), make_encoder(cascade.accurate.encoder)

        def both(texts: list[str]) -> tuple[list[str], float]:
            got, share = cascade_labels(cascade, fast.encode(texts), accurate.encode(texts), texts)
            return got, round(share, 4)

        return both
    model = load_model(path, "domain")
    encoder = make_encoder(model.encoder)
    return lambda texts: (model.predict_labels(encoder.encode(texts)), 1.0)


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


def latency_prompts(n: int, which: str) -> list[str]:
    """``validation``: injection validation prompts; ``dcrouter128``: distinct dcrouter
    prompts cut to at most 128 MiniLM tokens (as ``bench_signal_gateway.py`` sends)."""
    if which == "validation":
        return read_rows(GUARDS / "injection" / "validation.jsonl", "jailbreak").texts[:n]
    from polyroute.embed_static import tokenizer
    from polyroute.eval.io import load_dataset, resolve_data_path

    tok = tokenizer()
    out: dict[str, None] = {}
    for text in load_dataset(resolve_data_path("dcrouter")).prompts:
        offsets = tok.encode(text, add_special_tokens=False).offsets
        cut = text if len(offsets) <= 128 else text[: offsets[127][1]]
        if cut.strip():
            out[cut] = None
        if len(out) == n:
            break
    return list(out)


def latency(
    n: int,
    models: dict[str, str] | None = None,
    kinds: tuple[str, ...] = ("jailbreak", "domain"),
    which: str = "validation",
) -> dict[str, float]:
    """p50 / p99 of one signal ``compute()`` per prompt (fresh request, one thread); a
    fresh suffix per prompt keeps the MiniLM runtime's memory of recent texts out of it."""
    from polyroute.signals.domain import DomainSignal
    from polyroute.signals.jailbreak import JailbreakSignal
    from polyroute.types import Request

    prompts = latency_prompts(n, which)
    out = {}
    classes = {"jailbreak": JailbreakSignal, "domain": DomainSignal}
    salt = time.perf_counter_ns()
    for name in kinds:
        chosen = (models or {}).get(name)
        signal = classes[name](name, {"model": chosen} if chosen else {})
        signal.warmup()
        times = []
        for k, text in enumerate(prompts):
            request = Request.chat(f"{text} #{salt + k}")
            start = time.perf_counter()
            signal.compute(request)
            times.append(time.perf_counter() - start)
        out[f"{name}_p50_ms"] = round(float(np.percentile(times, 50)) * 1e3, 4)
        out[f"{name}_p99_ms"] = round(float(np.percentile(times, 99)) * 1e3, 4)
        out[f"{name}_mean_ms"] = round(float(np.mean(times)) * 1e3, 4)
    return out


def cascade_result(dom: tuple[Rows, Rows], sets: dict[str, list[str]]) -> dict[str, Any]:
    """The domain cascade (static, then MiniLM when unsure) as ``train-signal`` trains it."""
    import tempfile

    from polyroute.signals.cascade import save_cascade
    from polyroute.signals.cascade_train import train_domain_cascade

    model = train_domain_cascade(dom[0], validation=dom[1], min_oos_recall=0.9)
    with tempfile.TemporaryDirectory() as tmp:
        label = labeller(save_cascade(model, Path(tmp) / "cascade"))
        rates = {}
        for name, texts in sets.items():
            got, share = label(texts)
            rates[f"unrelated_oos_{name}"] = round(
                float(np.mean([p == OUT_OF_SCOPE for p in got])), 4
            )
            rates[f"accurate_share_{name}"] = share
    return {
        "domain_min_oos_recall_0.9": {**model.metrics, **rates},
        "band": [model.low, model.high],
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--encoders", default="static,minilm,tfidf")
    parser.add_argument("--latency-n", type=int, default=500)
    parser.add_argument("--domain-models", default=None, metavar="DIR,DIR")
    parser.add_argument(
        "--latency-set", default="validation", choices=("validation", "dcrouter128")
    )
    args = parser.parse_args()
    if args.domain_models:
        judge_domain_models(args.domain_models.split(","), args.latency_n, args.latency_set)
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
        elif encoder == "cascade":
            result = cascade_result(dom, sets)
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
    print(json.dumps({"latency": latency(args.latency_n, which=args.latency_set)}), flush=True)


if __name__ == "__main__":
    main()
