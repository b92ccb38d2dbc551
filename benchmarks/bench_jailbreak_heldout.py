"""The ``jailbreak`` signal on held-out attack styles and hard benign prompts.

Every model is trained on the shared injection train split only, and flags a prompt
when its score reaches its own threshold: the lowest one flagging at most 3 % of the
benign rows of the validation split (as ``polyroute train-signal --validation`` does).
Each is then judged on the validation split (F1, false-positive rate) and on the
probe sets of ``benchmarks/probes/jailbreak_heldout.jsonl`` (written for this project,
see ``probes/README.md``): recall on ``wild_jailbreak`` and ``indirect_injection``,
the share flagged on ``hard_benign`` and ``plain_benign``.

Models: the shipped default (loaded, not retrained; ``--models DIR,DIR`` adds other
saved models, say the previous default, and ``--quick`` stops after them; a saved
cascade is scored as it is served, MiniLM only in its band, and its ``ms/prompt`` is
the signal's ``compute()``); the
TF-IDF baseline exactly as ``bench_signals.py`` trains it (word 1-2-grams, LR C=4);
then alternatives whose C and class weight are chosen by 5-fold cross-validation on
train (the recall at the out-of-fold threshold keeping benign false positives at
3 %): LR over static, MiniLM, static+MiniLM concatenated, char 2-5-gram TF-IDF, and
the averaged probabilities of two of those.  The probes never choose anything: they
are the final check only.  ``ms/prompt`` is one prompt at a time, one thread
(encoder + model), median over ``--latency-n`` probe prompts.

    python benchmarks/bench_jailbreak_heldout.py [--latency-n 100] [--errors NAME,NAME]

``--errors NAME,NAME`` also prints the probes those models get wrong (a name is a
substring of a model's name, say ``shipped,baseline``).  MiniLM vectors of
the training rows come from the embedding cache (computed once, ~5 minutes); the
latency uses a fresh uncached encoder.
"""

from __future__ import annotations

import os

os.environ.setdefault("RAYON_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from polyroute.embed import make_encoder
from polyroute.signals.cascade import is_cascade
from polyroute.signals.textmodel import default_model_dir, load_model
from polyroute.signals.textmodel_train import jailbreak_metrics, jailbreak_threshold

HERE = Path(__file__).resolve().parent
INJECTION = HERE.parents[1] / "shared" / "data" / "guards" / "injection"
PROBES = HERE / "probes" / "jailbreak_heldout.jsonl"
SETS = ("wild_jailbreak", "indirect_injection", "hard_benign", "plain_benign")
MAX_FPR = 0.03
GRID_C = (1.0, 4.0, 16.0, 64.0)
GRID_WEIGHT: tuple[str | None, ...] = (None, "balanced")
Scores = Any  # float32 [n]


@dataclass(frozen=True)
class Split:
    texts: list[str]
    positive: Any  # bool [n]
    sets: list[str]


def read_split(path: Path) -> Split:
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return Split(
        [r["text"] for r in rows],
        np.asarray([r["label"] == "injection" for r in rows]),
        [r.get("set", "") for r in rows],
    )


@dataclass
class Result:
    name: str
    val: Scores
    probe: Scores
    ms: float
    cv_recall: float | None = None
    note: str = ""


# --------------------------------------------------------------------------- features


class Features:
    """Feature matrices for train, validation and probes, computed once per kind."""

    def __init__(self, train: Split, val: Split, probe: Split, aug: Split) -> None:
        self.splits = (train, val, probe, aug)
        self.cache: dict[str, list[Any]] = {}
        self.vectorizers: dict[str, Any] = {}

    def get(self, kind: str) -> list[Any]:
        """``[train, validation, probes, augmentation rows]`` for ``kind``."""
        if kind not in self.cache:
            self.cache[kind] = self._compute(kind)
        return self.cache[kind]

    def _compute(self, kind: str) -> list[Any]:
        if "+" in kind:
            parts = [self.get(k) for k in kind.split("+")]
            return [hstack([p[i] for p in parts]) for i in range(4)]
        if kind in ("static", "minilm", "ngram"):
            enc = make_encoder(kind)
            enc.fit(self.splits[0].texts)
            return [enc.encode(s.texts) for s in self.splits]
        vec = tfidf(kind)
        self.vectorizers[kind] = vec.fit(self.splits[0].texts)
        return [vec.transform(s.texts) for s in self.splits]


def hstack(parts: list[Any]) -> Any:
    import scipy.sparse as sp

    return sp.hstack(parts).tocsr() if sp.issparse(parts[0]) else np.hstack(parts)


def vstack(parts: list[Any]) -> Any:
    import scipy.sparse as sp

    return sp.vstack(parts).tocsr() if sp.issparse(parts[0]) else np.vstack(parts)


@dataclass(frozen=True)
class Augmented:
    """Concatenations of two train rows (``src`` their indices): benign + injection, in
    either order, is an injection; benign + benign is benign.  Teaches the model that an
    injection inside a longer benign text is still one, and that length is not."""

    split: Split
    src: Any  # int [m x 2]


def augment(train: Split, n: int) -> Augmented:
    rng = np.random.default_rng(0)
    benign, attack = np.flatnonzero(~train.positive), np.flatnonzero(train.positive)
    joiners = (" ", "\n\n", ". ", "\n")
    texts, labels, src = [], [], []
    for k in range(n):
        first = int(rng.choice(benign))
        second = int(rng.choice(attack if k % 2 == 0 else benign))
        pair = (first, second) if rng.random() < 0.5 else (second, first)
        texts.append(joiners[k % len(joiners)].join(train.texts[i] for i in pair))
        labels.append(k % 2 == 0)
        src.append(pair)
    return Augmented(Split(texts, np.asarray(labels), ["augmented"] * n), np.asarray(src))


def tfidf(kind: str) -> Any:
    from sklearn.feature_extraction.text import TfidfVectorizer

    if kind == "tfidf":  # the bench_signals baseline
        return TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True)
    if kind == "char":
        return TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True,
                               min_df=2, max_features=200_000)  # fmt: skip
    raise ValueError(f"unknown feature kind {kind!r}")


# --------------------------------------------------------------------------- models


def logreg(c: float, weight: str | None) -> Any:
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=c, class_weight=weight, max_iter=3000)


@dataclass(frozen=True)
class Extra:
    """Augmentation rows for a fit: their features, labels and source train rows."""

    x: Any
    y: Any
    src: Any


def fit_lr(x: Any, y: Any, c: float, weight: str | None, extra: Extra | None = None,
           rows: Any = None) -> Any:  # fmt: skip
    """LR on ``x[rows]`` plus the augmentation rows built only from ``rows``."""
    rows = np.arange(len(y)) if rows is None else rows
    xs, ys = x[rows], y[rows]
    if extra is not None:
        inside = np.zeros(len(y), dtype=bool)
        inside[rows] = True
        keep = inside[extra.src].all(axis=1)
        xs, ys = vstack([xs, extra.x[keep]]), np.concatenate([ys, extra.y[keep]])
    return logreg(c, weight).fit(xs, ys)


def oof_scores(x: Any, y: Any, c: float, weight: str | None, extra: Extra | None = None) -> Scores:
    """Out-of-fold scores of the original train rows (augmentation only inside folds)."""
    from sklearn.model_selection import StratifiedKFold

    out = np.zeros(len(y), dtype=np.float32)
    folds = StratifiedKFold(n_splits=5, shuffle=True, random_state=0)
    for tr, te in folds.split(np.zeros(len(y)), y):
        out[te] = fit_lr(x, y, c, weight, extra, tr).predict_proba(x[te])[:, 1]
    return out


def recall_at_fpr(scores: Scores, y: Any) -> float:
    return float(jailbreak_metrics(scores, y, jailbreak_threshold(scores, y, MAX_FPR))["recall"])


@dataclass(frozen=True)
class Choice:
    c: float
    weight: str | None
    cv_recall: float
    oof: Scores


def choose(x: Any, y: Any, extra: Extra | None) -> Choice:
    """The (C, class weight) with the best out-of-fold recall at 3 % benign false positives."""
    best: Choice | None = None
    for weight in GRID_WEIGHT:
        for c in GRID_C:
            oof = oof_scores(x, y, c, weight, extra)
            got = recall_at_fpr(oof, y)
            if best is None or got > best.cv_recall + 1e-9:
                best = Choice(c, weight, got, oof)
    assert best is not None
    return best


# --------------------------------------------------------------------------- latency


def per_prompt_ms(texts: Sequence[str], score: Callable[[str], float]) -> float:
    """Median ms of ``score`` on one prompt; each prompt gets a fresh suffix, so no
    encoder's memo of recent texts (MiniLM keeps one) can answer it."""
    salt = time.perf_counter_ns()
    score(f"{texts[0]} #{salt}")
    times = []
    for k, text in enumerate(texts):
        prompt = f"{text} #{salt + k + 1}"
        start = time.perf_counter()
        score(prompt)
        times.append(time.perf_counter() - start)
    return round(float(np.median(times)) * 1e3, 3)


def encoder_scorer(kind: str, train: Split) -> Callable[[str], Any]:
    """One prompt -> its feature row, with a fresh uncached encoder (as the signal does)."""
    if kind == "static+minilm":
        a, b = encoder_scorer("static", train), encoder_scorer("minilm", train)
        return lambda t: np.hstack([a(t), b(t)])
    enc = make_encoder(kind, use_cache=False)
    enc.fit(train.texts)
    return lambda t: enc.encode([t])


# --------------------------------------------------------------------------- runs

#: (features, with augmentation rows): each gets its C and class weight by CV on train
CANDIDATES: tuple[tuple[str, bool], ...] = (
    ("static", False),
    ("minilm", False),
    ("static+minilm", False),
    ("tfidf", False),
    ("char", False),
    ("tfidf+char", False),
    ("minilm", True),
    ("char", True),
    ("tfidf+char", True),
)
AVERAGES = (("minilm", "tfidf"), ("minilm", "char"), ("static+minilm", "char"), ("tfidf", "char"))


def saved(feats: Features, texts: list[str], train: Split, path: Path, name: str) -> Result:
    """A saved model (the shipped default, or ``--models DIR``), loaded, not retrained."""
    if is_cascade(path):
        return saved_cascade(feats, texts, path, name)
    model = load_model(path, "jailbreak")
    xv, xp = feats.get(model.encoder)[1:3]
    row = encoder_scorer(model.encoder, train)
    ms = per_prompt_ms(texts, lambda t: float(model.scores(row(t))[0]))
    note = (
        f"manifest threshold {model.threshold:.4f}; {model.metrics.get('extra_rows', 0)} extra rows"
    )
    label = f"{name}: {model.encoder} + LR ({path.name})"
    return Result(label, model.scores(xv), model.scores(xp), ms, note=note)


def saved_cascade(feats: Features, texts: list[str], path: Path, name: str) -> Result:
    """A saved jailbreak cascade: its scores on validation and probes (the accurate stage
    only in the band, as served), the share sent to it, and the latency of the signal's
    ``compute()`` (fast encoder, and MiniLM on ONNX Runtime for the prompts in the band)."""
    from polyroute.signals.jailbreak import JailbreakSignal
    from polyroute.signals.jailbreak_cascade import load_jailbreak_cascade
    from polyroute.types import Request

    model = load_jailbreak_cascade(path)
    fast, slow = feats.get(model.fast.encoder), feats.get(model.accurate.encoder)
    out, sent = [], []
    for k, split in ((1, feats.splits[1]), (2, feats.splits[2])):
        p, q = model.fast.scores(fast[k]), model.accurate.scores(slow[k])
        pairs = zip(p, split.texts, strict=True)
        unsure = np.asarray([not model.sure(float(a), t) for a, t in pairs])
        mixed = np.asarray([model.combine(float(a), float(b)) for a, b in zip(p, q, strict=True)])
        cleared = np.zeros(len(p), dtype=bool)
        if model.key is not None:  # a second key clears some in-band prompts (under the gate)
            s = model.key.scores(feats.get(model.key.encoder)[k])
            cleared = unsure & np.asarray([model.key_clears(float(x)) for x in s])
            mixed = np.where(cleared, model.low * p, mixed)
        out.append(np.where(unsure, mixed, p).astype(np.float32))
        sent.append(float((unsure & ~cleared).mean()))
    signal = JailbreakSignal("j", {"model": str(path)})
    signal.warmup()
    ms = per_prompt_ms(texts, lambda t: float(signal.compute(Request.chat(t)) or 0.0))
    note = (f"manifest threshold {model.threshold:.4f}; band {model.low:.3f}-{model.high:.3f}; "
            f"sent on: validation {sent[0]:.1%}, probes {sent[1]:.1%}")  # fmt: skip
    label = f"{name}: {model.fast.encoder} -> {model.accurate.encoder} cascade ({path.name})"
    return Result(label, out[0], out[1], ms, note=note)


def latency_of(kind: str, feats: Features, lr: Any, texts: list[str], train: Split) -> float:
    """Per-prompt latency of ``lr`` over ``kind`` features of one raw prompt."""
    if kind in ("tfidf", "char", "tfidf+char"):
        vecs = [feats.vectorizers[k] for k in kind.split("+")]
        return per_prompt_ms(
            texts, lambda t: float(lr.predict_proba(hstack([v.transform([t]) for v in vecs]))[0, 1])
        )
    row = encoder_scorer(kind, train)
    return per_prompt_ms(texts, lambda t: float(lr.predict_proba(row(t))[0, 1]))


def candidate(kind: str, aug: Augmented | None, feats: Features, texts: list[str],
              train: Split) -> tuple[Result, Scores]:  # fmt: skip
    started = time.perf_counter()
    xt, xv, xp, xa = feats.get(kind)
    y = train.positive
    extra = Extra(xa, aug.split.positive, aug.src) if aug is not None else None
    pick = choose(xt, y, extra)
    lr = fit_lr(xt, y, pick.c, pick.weight, extra)
    ms = latency_of(kind, feats, lr, texts, train)
    name = f"{kind}{' +aug' if aug else ''} + LR (C={pick.c:g}, {pick.weight or 'unweighted'})"
    note = f"CV {time.perf_counter() - started:.0f} s"
    res = Result(name, lr.predict_proba(xv)[:, 1], lr.predict_proba(xp)[:, 1], ms,
                 pick.cv_recall, note)  # fmt: skip
    print(json.dumps({"model": name, "cv_recall": pick.cv_recall, "note": note}), flush=True)
    return res, pick.oof


def run_all(train: Split, val: Split, probe: Split, args: argparse.Namespace) -> list[Result]:
    aug = augment(train, args.augment)
    feats = Features(train, val, probe, aug.split)
    y, texts = train.positive, probe.texts[: args.latency_n]
    results = [saved(feats, texts, train, default_model_dir("jailbreak"), "shipped")]
    for d in filter(None, (args.models or "").split(",")):
        results.append(saved(feats, texts, train, Path(d), "saved"))
    xt, xv, xp, _ = feats.get("tfidf")
    lr = fit_lr(xt, y, 4.0, None)
    ms = latency_of("tfidf", feats, lr, texts, train)
    cv = recall_at_fpr(oof_scores(xt, y, 4.0, None), y)
    results.append(Result("baseline: TF-IDF word 1-2 + LR (C=4)", lr.predict_proba(xv)[:, 1],
                          lr.predict_proba(xp)[:, 1], ms, cv))  # fmt: skip
    if args.quick:
        return results
    members: dict[str, tuple[Result, Scores]] = {}
    for kind, with_aug in CANDIDATES:
        res, oof = candidate(kind, aug if with_aug else None, feats, texts, train)
        results.append(res)
        members.setdefault(kind, (res, oof))  # averages use the plain (no-aug) members
    for a, b in AVERAGES:
        results.append(average(members[a], members[b], y, f"mean({a}, {b})"))
    return results


def average(a: tuple[Result, Scores], b: tuple[Result, Scores], y: Any, name: str) -> Result:
    cv = recall_at_fpr((a[1] + b[1]) / 2, y)
    return Result(name, (a[0].val + b[0].val) / 2, (a[0].probe + b[0].probe) / 2,
                  round(a[0].ms + b[0].ms, 3), cv)  # fmt: skip


# --------------------------------------------------------------------------- report


def judge(res: Result, val: Split, probe: Split, max_fpr: float = MAX_FPR) -> dict[str, Any]:
    scores = np.asarray(res.val, dtype=np.float32)
    threshold = jailbreak_threshold(scores, val.positive, max_fpr)
    m = jailbreak_metrics(scores, val.positive, threshold)
    flagged = np.asarray(res.probe) >= threshold
    sets = np.asarray(probe.sets)
    per_set = {s: round(float(flagged[sets == s].mean()), 3) for s in SETS}
    counts = {f"{s}_n": f"{int(flagged[sets == s].sum())}/{int((sets == s).sum())}" for s in SETS}
    return {"model": res.name, "threshold": round(threshold, 4), "cv_recall": res.cv_recall,
            "val_f1": m["f1"], "val_fpr": m["fpr"], "val_recall": m["recall"], **per_set,
            **counts, "ms": res.ms, "note": res.note}  # fmt: skip


def table(rows: list[dict[str, Any]]) -> str:
    head = ("| model | CV recall @3 % | val F1 | val FP | wild recall | indirect recall "
            "| hard-benign flagged | plain-benign flagged | threshold | ms/prompt |")  # fmt: skip
    lines = [head, "|" + "---|" * 10]
    for r in rows:
        cv = "-" if r["cv_recall"] is None else f"{r['cv_recall']:.3f}"
        lines.append(f"| {r['model']} | {cv} | {r['val_f1']:.3f} | {r['val_fpr']:.3f} "
                     f"| {r['wild_jailbreak']:.3f} | {r['indirect_injection']:.3f} "
                     f"| {r['hard_benign']:.3f} ({r['hard_benign_n']}) "
                     f"| {r['plain_benign']:.3f} | {r['threshold']:.4f} "
                     f"| {r['ms']:.3f} |")  # fmt: skip
    return "\n".join(lines)


def sweep(results: list[Result], val: Split, probe: Split) -> str:
    """Each model at stricter thresholds (1, 2, 3 % of benign validation rows flagged)."""
    lines = ["| model | val FP target | val recall | wild recall | indirect recall "
             "| hard-benign flagged | plain-benign flagged |", "|" + "---|" * 7]  # fmt: skip
    for res in results:
        for fpr in (0.01, 0.02, 0.03):
            r = judge(res, val, probe, fpr)
            lines.append(f"| {res.name} | {fpr:.0%} | {r['val_recall']:.3f} "
                         f"| {r['wild_jailbreak']:.3f} | {r['indirect_injection']:.3f} "
                         f"| {r['hard_benign']:.3f} | {r['plain_benign']:.3f} |")  # fmt: skip
    return "\n".join(lines)


def errors(res: Result, threshold: float, probe: Split) -> None:
    for text, truth, s, score in zip(probe.texts, probe.positive, probe.sets, res.probe,
                                     strict=True):  # fmt: skip
        if (score >= threshold) != truth:
            print(f"  [{s}] {float(score):.3f} {text[:110]!r}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--latency-n", type=int, default=100)
    parser.add_argument("--augment", type=int, default=4000, help="concatenated train rows")
    parser.add_argument(
        "--models",
        default=None,
        metavar="DIR,DIR",
        help="also judge these saved models (say the previous default)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="only the saved models and the baseline (no CV families)",
    )
    parser.add_argument("--errors", default=None, metavar="NAME,NAME",
                        help="print the probes these models get wrong")  # fmt: skip
    args = parser.parse_args()
    started = time.perf_counter()
    train, val = read_split(INJECTION / "train.jsonl"), read_split(INJECTION / "validation.jsonl")
    probe = read_split(PROBES)
    counts = {s: probe.sets.count(s) for s in SETS}
    print(json.dumps({"train": len(train.texts), "validation": len(val.texts), **counts}))
    results = run_all(train, val, probe, args)
    rows = [judge(r, val, probe) for r in results]
    for row in rows:
        print(json.dumps(row), flush=True)
    print(table(rows))
    print(sweep(results, val, probe))
    if args.errors:
        for res, row in zip(results, rows, strict=True):
            if any(part in res.name for part in args.errors.split(",")):
                print(f"errors of {res.name}:")
                errors(res, row["threshold"], probe)
    print(f"total {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
