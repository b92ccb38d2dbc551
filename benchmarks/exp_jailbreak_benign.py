"""Experiment: broader benign look-alike rows, benign sample weights and two-model
agreement for the ``jailbreak`` n-gram model.

Protocol (written before any probe was scored; the probes choose nothing):

- Features: the shipped ``ngram`` encoder (hashed word 1-2 + char 2-5 n-grams,
  ``polyroute.embed_ngram``), also split into its word block and its char block.
- Training rows: the shared injection train split, plus generated benign look-alike
  rows: ``L`` = the shipped 298 (``polyroute/signals/lookalikes.py``, groups t00-t20),
  ``B`` = the new ones of ``benchmarks/_exp_jb_benign.py`` (groups b00-b28, written from
  the dataset card's hard-negative categories, the issue's process/shell wording and
  ordinary assistant-addressed requests; not from the probes).
- Settings: rows {L, L+B} x C {4, 16, 64} x weight of generated rows {1, 4} for one LR
  over the combined vector (the shipped model format); and two-model agreement (an LR on
  the word block, one on the char block, score = the smaller probability: flag only if
  both flag) for rows L+B, C 16, weight {1, 4}.
- Cross-validation: 5 stratified folds of train (seed 0, as ``train-signal``); every
  generated template group is assigned whole to one fold (shuffled round-robin, seed 0)
  and that fold's model never sees it.  Out-of-fold threshold = lowest flagging <= 3 %
  of out-of-fold train benign rows.  Per setting: out-of-fold recall at that threshold
  ("CV recall") and the share of held-out generated rows (L and B together) it flags.
- Choice: the most CV recall among settings flagging <= 3 % of held-out generated rows
  (ties within 0.001: single LR before agreement, then weight 1, then smaller C).  If no
  setting meets the 3 %, the one flagging the fewest, reported as not meeting it.
- Only then, for the chosen setting (refit on all its rows), the shipped model (loaded)
  and the TF-IDF word 1-2 + LR (C=4) baseline of ``bench_jailbreak_heldout.py``, each
  thresholded at the lowest score flagging <= 3 % of validation benign rows: validation
  F1, the probe sets (``benchmarks/probes/jailbreak_heldout.jsonl``), the share flagged of
  the first 1,500 distinct dcrouter prompts and every 15th CLINC150 train query (first
  1,500; ``bench_jailbreak_traffic.py``'s sets), and ms/prompt (featurise + score, one
  prompt, median of 100 probe prompts).

Outcome of CV, recorded before any probe was scored: no setting (first round, nor a
second round of heavier weights / weaker C / word block alone added after it) flags
<= 3 % of held-out generated rows (best 4.5 %, at CV recall 0.934 against 0.971 for the
shipped recipe); the fallback rule picks ``rows L+B, C=1, gen weight 64``.  Also scored,
fixed at the same time: the shipped recipe retrained (a check), the shipped recipe plus
the new rows (``L+B, C=16, weight 1``), a middle point (``L+B, C=4, weight 16``) and the
least-flagging agreement (``agree, L+B, C=4, weight 16``).  ``polyroute train-signal
jailbreak --encoder cascade`` with the new rows as ``--extra-data`` picks an empty MiniLM
band (the n-gram model alone), so no cascade is scored.

    python benchmarks/exp_jailbreak_benign.py --also "NAME;NAME"   # ~5 min on 2 busy cores
    python benchmarks/exp_jailbreak_benign.py --cv-only  # stop after the choice
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse
import functools
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from polyroute.embed_ngram import DIM, blocks, features
from polyroute.eval.io import load_dataset
from polyroute.signals.textmodel import default_model_dir, load_model
from polyroute.signals.textmodel_train import jailbreak_metrics, jailbreak_threshold

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _exp_jb_benign import generate  # noqa: E402
from _exp_jb_common import INJECTION, LOOKALIKES, MAX_FPR, PROBES, SETS, SHARED, rows  # noqa: E402

OUT = Path("/tmp/jbx")


# --------------------------------------------------------------------------- features


def encode(texts: list[str]) -> tuple[Any, Any]:
    """Sparse word-block and char-block matrices."""
    w_rows, c_rows = [], []
    for t in texts:
        w, c = blocks(t)
        w_rows.append(sp.csr_matrix(w))
        c_rows.append(sp.csr_matrix(c))
    return sp.vstack(w_rows).tocsr(), sp.vstack(c_rows).tocsr()


@dataclass
class Data:
    word: Any
    char: Any
    y: Any  # bool
    texts: list[str]
    groups: list[str]
    sets: list[str]

    @functools.cached_property
    def both(self) -> Any:
        return (self.word + self.char).tocsr()


def load(name: str, texts: list[str], y: Any, groups: list[str], sets: list[str]) -> Data:
    cache = OUT / f"feat_{name}.npz"
    if cache.exists():
        z = np.load(cache, allow_pickle=False)
        n = len(texts)
        w = sp.csr_matrix((z["wd"], z["wi"], z["wp"]), shape=(n, DIM))
        c = sp.csr_matrix((z["cd"], z["ci"], z["cp"]), shape=(n, DIM))
    else:
        w, c = encode(texts)
        np.savez(cache, wd=w.data, wi=w.indices, wp=w.indptr, cd=c.data, ci=c.indices,
                 cp=c.indptr)  # fmt: skip
    return Data(w, c, np.asarray(y, dtype=bool), texts, groups, sets)


def datasets() -> dict[str, Data]:
    OUT.mkdir(parents=True, exist_ok=True)
    out: dict[str, Data] = {}
    for split in ("train", "validation"):
        r = rows(INJECTION / f"{split}.jsonl")
        out[split] = load(split, [x["text"] for x in r], [x["label"] == "injection" for x in r],
                          [""] * len(r), [split] * len(r))  # fmt: skip
    look = rows(LOOKALIKES)
    out["L"] = load("L", [x["text"] for x in look], [False] * len(look),
                    [x["group"] for x in look], ["L"] * len(look))  # fmt: skip
    new = list(generate())
    out["B"] = load("B", [t for t, _ in new], [False] * len(new), [g for _, g in new],
                    ["B"] * len(new))  # fmt: skip
    return out


def eval_sets() -> dict[str, Data]:
    out: dict[str, Data] = {}
    p = rows(PROBES)
    out["probes"] = load("probes", [x["text"] for x in p], [x["label"] == "injection" for x in p],
                         [""] * len(p), [x["set"] for x in p])  # fmt: skip
    dc = list(dict.fromkeys(load_dataset("dcrouter").prompts))[:1500]
    out["dcrouter"] = load("dcrouter", dc, [False] * len(dc), [""] * len(dc), ["dc"] * len(dc))
    cl = [x["text"] for x in rows(SHARED / "guards/domains/clinc150/train.jsonl")][::15][:1500]
    out["clinc"] = load("clinc", cl, [False] * len(cl), [""] * len(cl), ["clinc"] * len(cl))
    return out


# --------------------------------------------------------------------------- models


@dataclass(frozen=True)
class Setting:
    rows: str  # "L" or "LB"
    c: float
    weight: float
    kind: str = "ngram"  # "ngram" (the shipped vector), "agree" or "word" (word block only)

    @property
    def agree(self) -> bool:
        return self.kind == "agree"

    @property
    def name(self) -> str:
        kind = {"ngram": "ngram", "agree": "agree(word, char)", "word": "word-ngram"}[self.kind]
        return f"{kind} + LR, rows {'+'.join(self.rows)}, C={self.c:g}, gen weight {self.weight:g}"


SETTINGS = (
    *(Setting(r, c, w) for r in ("L", "LB") for c in (4.0, 16.0, 64.0) for w in (1.0, 4.0)),
    Setting("LB", 16.0, 1.0, "agree"),
    Setting("LB", 16.0, 4.0, "agree"),
    # second round, added after the first round's CV (no setting met the 3 %; no probe
    # had been scored): heavier generated-row weights, a weaker C, the word block alone
    *(Setting("LB", c, w) for c in (1.0, 4.0, 16.0) for w in (16.0, 64.0)),
    Setting("LB", 1.0, 4.0),
    *(Setting("LB", c, w, "agree") for c in (4.0,) for w in (4.0, 16.0)),
    *(Setting("LB", c, w, "word") for c in (4.0, 16.0) for w in (1.0, 16.0)),
)


def lr_fit(x: Any, y: Any, c: float, w: Any) -> Any:
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=c, max_iter=3000).fit(x, y, sample_weight=w)


class Fitted:
    """One LR over the combined vector, or two (word, char) whose min is the score."""

    def __init__(self, s: Setting, train: Data, gen: list[Data], train_rows: Any,
                 gen_masks: list[Any]) -> None:  # fmt: skip
        self.s = s
        parts = [(train, train_rows, 1.0)]
        parts += [(g, m, s.weight) for g, m in zip(gen, gen_masks, strict=True)]
        y = np.concatenate([d.y[m] for d, m, _ in parts])
        w = np.concatenate([np.full(len(d.y[m]), wt) for d, m, wt in parts])
        if s.agree:
            xw = sp.vstack([d.word[m] for d, m, _ in parts]).tocsr()
            xc = sp.vstack([d.char[m] for d, m, _ in parts]).tocsr()
            self.models = [lr_fit(xw, y, s.c, w), lr_fit(xc, y, s.c, w)]
        else:
            x = sp.vstack([self.x(d)[m] for d, m, _ in parts]).tocsr()
            self.models = [lr_fit(x, y, s.c, w)]

    def scores(self, d: Data, rows_: Any = None) -> Any:
        sel = np.arange(len(d.y)) if rows_ is None else rows_
        if len(sel) == 0:
            return np.zeros(0, dtype=np.float32)
        if self.s.agree:
            a = self.models[0].predict_proba(d.word[sel])[:, 1]
            b = self.models[1].predict_proba(d.char[sel])[:, 1]
            return np.minimum(a, b).astype(np.float32)
        return self.models[0].predict_proba(self.x(d)[sel])[:, 1].astype(np.float32)

    def x(self, d: Data) -> Any:
        return d.word if self.s.kind == "word" else d.both

    def one(self, text: str) -> float:
        w, c = blocks(text)
        if self.s.agree:
            a = self.models[0].predict_proba(w[None])[0, 1]
            return float(min(a, self.models[1].predict_proba(c[None])[0, 1]))
        row = w if self.s.kind == "word" else w + c
        return float(self.models[0].predict_proba(row[None])[0, 1])


# --------------------------------------------------------------------------- CV


def fold_plan(train: Data, gen: list[Data]) -> tuple[list[tuple[Any, Any]], dict[str, int]]:
    from sklearn.model_selection import StratifiedKFold

    folds = list(StratifiedKFold(5, shuffle=True, random_state=0).split(np.zeros(len(train.y)),
                                                                         train.y))  # fmt: skip
    groups = sorted({g for d in gen for g in d.groups})
    order = np.random.default_rng(0).permutation(len(groups))
    return folds, {groups[j]: k % 5 for k, j in enumerate(order)}


def cross_validate(s: Setting, data: dict[str, Data]) -> dict[str, Any]:
    train, gen = data["train"], [data["L"], data["B"]]
    folds, fold_of = fold_plan(train, gen)
    oof = np.zeros(len(train.y), dtype=np.float32)
    held = [np.zeros(len(g.y), dtype=np.float32) for g in gen]
    fold_idx = [np.asarray([fold_of[x] for x in g.groups]) for g in gen]
    used = [("L" in s.rows), ("B" in s.rows)]
    for k, (tr, te) in enumerate(folds):
        masks = [(fi != k) & u for fi, u in zip(fold_idx, used, strict=True)]
        model = Fitted(s, train, gen, tr, masks)
        oof[te] = model.scores(train, te)
        for g, h, fi in zip(gen, held, fold_idx, strict=True):
            h[fi == k] = model.scores(g, np.flatnonzero(fi == k))
    thr = jailbreak_threshold(oof, train.y, MAX_FPR)
    recall = float(jailbreak_metrics(oof, train.y, thr)["recall"])
    flagged = [float((h >= thr).mean()) for h in held]
    allgen = float(np.concatenate([h >= thr for h in held]).mean())
    by_group: dict[str, float] = {}
    for g, h in zip(gen, held, strict=True):
        for name in sorted(set(g.groups)):
            m = np.asarray(g.groups) == name
            by_group[name] = round(float((h[m] >= thr).mean()), 3)
    worst = sorted(by_group.items(), key=lambda kv: -kv[1])[:5]
    return {"setting": s.name, "cv_recall": round(recall, 4), "gen_flagged": round(allgen, 4),
            "L_flagged": round(flagged[0], 4), "B_flagged": round(flagged[1], 4),
            "worst_groups": worst, "oof_threshold": round(thr, 4)}  # fmt: skip


def choose(results: list[tuple[Setting, dict[str, Any]]]) -> tuple[Setting, bool]:
    ok = [(s, r) for s, r in results if r["gen_flagged"] <= MAX_FPR]
    if not ok:
        return min(results, key=lambda sr: sr[1]["gen_flagged"])[0], False
    best = max(r["cv_recall"] for _, r in ok)
    near = [(s, r) for s, r in ok if r["cv_recall"] >= best - 0.001]
    near.sort(key=lambda sr: (sr[0].agree, sr[0].weight, sr[0].c, -sr[1]["cv_recall"]))
    return near[0][0], True


# --------------------------------------------------------------------------- final


def per_prompt_ms(texts: list[str], score: Any) -> float:
    score(texts[0])
    times = []
    for k, t in enumerate(texts):
        start = time.perf_counter()
        score(f"{t} #{k}")
        times.append(time.perf_counter() - start)
    return round(float(np.median(times)) * 1e3, 3)


def judge(name: str, val_scores: Any, other: dict[str, Any], val: Data, ev: dict[str, Data],
          ms: float) -> dict[str, Any]:  # fmt: skip
    thr = jailbreak_threshold(val_scores, val.y, MAX_FPR)
    m = jailbreak_metrics(val_scores, val.y, thr)
    out: dict[str, Any] = {"model": name, "threshold": round(thr, 4), "val_f1": m["f1"],
                           "val_fpr": m["fpr"], "ms": ms}  # fmt: skip
    flags = other["probes"] >= thr
    sets = np.asarray(ev["probes"].sets)
    for s in SETS:
        out[s] = f"{int(flags[sets == s].sum())}/{int((sets == s).sum())}"
    for s in ("dcrouter", "clinc"):
        out[s] = round(float((other[s] >= thr).mean()), 3)
    return out


def served(path: Path, val: Data, ev: dict[str, Data]) -> dict[str, Any]:
    """A saved model directory (say a cascade) scored as served, ``JailbreakSignal.compute``."""
    from polyroute.signals.jailbreak import JailbreakSignal
    from polyroute.types import Request

    signal = JailbreakSignal("j", {"model": str(path)})
    signal.warmup()

    def one(t: str) -> float:
        return float(signal.compute(Request.chat(t)) or 0.0)

    sc = {k: np.asarray([one(t) for t in d.texts], dtype=np.float32) for k, d in ev.items()}
    ms = per_prompt_ms(ev["probes"].texts[:100], one)
    vs = np.asarray([one(t) for t in val.texts], dtype=np.float32)
    return judge(f"saved {path}", vs, sc, val, ev, ms)


def final(chosen: Setting, extra: list[Setting], data: dict[str, Data],
          dirs: list[Path]) -> list[dict[str, Any]]:  # fmt: skip
    ev = eval_sets()
    val, train = data["validation"], data["train"]
    texts = ev["probes"].texts[:100]
    out = []
    shipped = load_model(default_model_dir("jailbreak"), "jailbreak")
    assert shipped.encoder == "ngram"
    sc = {k: shipped.scores(d.both) for k, d in ev.items()}
    ms = per_prompt_ms(texts, lambda t: float(shipped.scores(features(t)[None])[0]))
    out.append(judge("shipped (ngram + L, C=16)", shipped.scores(val.both), sc, val, ev, ms))
    from sklearn.feature_extraction.text import TfidfVectorizer

    vec = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True).fit(train.texts)
    base = lr_fit(vec.transform(train.texts), train.y, 4.0, None)

    def tf(texts_: list[str]) -> Any:
        return base.predict_proba(vec.transform(texts_))[:, 1]

    ms = per_prompt_ms(texts, lambda t: float(tf([t])[0]))
    sc = {k: tf(d.texts) for k, d in ev.items()}
    out.append(judge("baseline TF-IDF word 1-2 + LR (C=4)", tf(val.texts), sc, val, ev, ms))
    gen = [data["L"], data["B"]]
    for k, s in enumerate([chosen, *extra]):
        masks = [np.full(len(g.y), c in s.rows) for g, c in zip(gen, "LB", strict=True)]
        model = Fitted(s, train, gen, np.arange(len(train.y)), masks)
        sc = {k2: model.scores(d) for k2, d in ev.items()}
        ms = per_prompt_ms(texts, model.one)
        label = ("CHOSEN: " if k == 0 else "also: ") + s.name
        out.append(judge(label, model.scores(val), sc, val, ev, ms))
    out += [served(d, val, ev) for d in dirs]
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cv-only", action="store_true")
    ap.add_argument("--also", default="", help="extra settings (their names, ;-separated) to score")
    ap.add_argument("--models", default="", help="comma-separated saved model dirs to score")
    args = ap.parse_args()
    started = time.perf_counter()
    data = datasets()
    print(json.dumps({k: len(d.y) for k, d in data.items()}), flush=True)
    cv_path = OUT / "cv.jsonl"
    done = {}
    if cv_path.exists():
        done = {json.loads(x)["setting"]: json.loads(x) for x in cv_path.read_text().splitlines()}
    results = []
    for s in SETTINGS:
        if s.name not in done:
            t0 = time.perf_counter()
            done[s.name] = {**cross_validate(s, data), "s": round(time.perf_counter() - t0)}
            with cv_path.open("a") as f:
                f.write(json.dumps(done[s.name]) + "\n")
        print(json.dumps(done[s.name]), flush=True)
        results.append((s, done[s.name]))
    chosen, meets = choose(results)
    print(json.dumps({"chosen": chosen.name, "meets_gen_3pct": meets}), flush=True)
    if args.cv_only:
        return
    names = [x.strip() for x in args.also.split(";") if x.strip()]
    extra = [s for s in SETTINGS if s.name in names and s != chosen]
    table = final(chosen, extra, data, [Path(d) for d in args.models.split(",") if d])
    for row in table:
        print(json.dumps(row), flush=True)
    print("| model | val F1 | wild | indirect | hard-benign | plain-benign | dcrouter flagged "
          "| CLINC flagged | threshold | ms/prompt |\n|" + "---|" * 10)  # fmt: skip
    for r in table:
        print(
            f"| {r['model']} | {r['val_f1']:.4f} | {r['wild_jailbreak']} "
            f"| {r['indirect_injection']} | {r['hard_benign']} | {r['plain_benign']} "
            f"| {r['dcrouter']:.3f} | {r['clinc']:.3f} | {r['threshold']:.4f} | {r['ms']} |"
        )
    print(f"total {time.perf_counter() - started:.0f} s; chosen meets the 3 % CV bar: {meets}")


if __name__ == "__main__":
    main()
