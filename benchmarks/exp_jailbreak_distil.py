"""Experiment: a 3-layer MiniLM *distilled* from the fine-tuned jailbreak graph.

    python benchmarks/exp_jailbreak_distil.py [--out /tmp/jbdistil]   # ~10 min on 2 cores

The fine-tuned 6-layer graph (``variant: finetuned``) is the most accurate model measured
(wild 60/66, indirect 53/53, hard benign 4/140) but costs ~4 ms of gateway CPU a request:
210 req/s with jailbreak + domain + similarity where the n-gram default serves 739, back to
back (this session).  The sixth session's 3-layer graph, trained on the labels alone, was
half as costly but flagged 8/140 hard-benign prompts.  Question: does a 3-layer student
trained on the 6-layer graph's *scores* (its teacher) keep the teacher's verdicts on
look-alike prompts?

Protocol, fixed before any probe was scored with a student (one configuration, no search):

- student: the first 3 layers of all-MiniLM-L6-v2, mean pooling, one linear head; every
  weight trained; texts cut to 128 tokens (the teacher's reading); AdamW 3e-5, weight
  decay 0.01, batch 32 length-bucketed, 10 % warm-up then linear decay, 2 epochs, seed 0
  (``polyroute.signals.finetune_train``'s recipe, ``--layers 3``).
- targets: the teacher ``q`` (the shipped int8 graph and head, as served).  Labelled rows
  (injection train split + the shipped look-alikes) learn ``0.5 * label + 0.5 * q``;
  unlabelled transfer rows learn ``q``: dcrouter prompts 1,500-2,999 and CLINC150 train
  rows 7, 22, 37, ... (1,500 each at most; disjoint from the traffic judged).  Binary
  cross-entropy on the soft target, every row weighted 1.
- served as ``train-signal --encoder finetuned`` serves: int8 per-channel ONNX, one prompt
  a run, threshold 0.5.
- judged once: validation F1, the probes, the traffic flagged (first 1,500 distinct
  dcrouter prompts, every 15th CLINC150 train query), the share of dcrouter the n-gram
  gate (0.0895) would send on, and ms a prompt.  Beside it: the teacher and the n-gram
  default, from the same code.
- worth shipping only if it keeps the teacher's probe counts (wild >= 60/66, indirect
  53/53, hard benign <= 4/140); the gateway benchmark then decides on speed.
"""

from __future__ import annotations

import argparse
import math
import random
import time
from pathlib import Path
from typing import Any

import numpy as np
from _exp_jb_common import INJECTION, LOOKALIKES, SETS, rows
from exp_jailbreak_finetune import traffic
from exp_jailbreak_gate import FINETUNED, NGRAM, _sets

from polyroute.signals.finetune_train import Schedule, _batches, _export, _Pooled
from polyroute.signals.finetuned import FINETUNED as FINETUNED_ENCODER
from polyroute.signals.finetuned import finetuned_encoder
from polyroute.signals.neural import model_encoder
from polyroute.signals.textmodel import TextModel, load_model, save_model
from polyroute.signals.textmodel_train import jailbreak_metrics, read_rows

LAYERS = 3
TOKENS = 128
EPOCHS = 2
TRANSFER = 1500


def teacher_scores(texts: list[str]) -> np.ndarray:
    model = load_model(FINETUNED, "jailbreak")
    return model.scores(model_encoder(model, "teacher").encode(texts)).astype(np.float64)


def fit(texts: list[str], target: np.ndarray, log: Any = print) -> _Pooled:
    import torch

    model = _Pooled(0, LAYERS, TOKENS)
    rng = random.Random(0)
    steps = EPOCHS * math.ceil(len(texts) / 32)
    train = Schedule([*model.bert.parameters(), *model.head.parameters()], steps, log)
    model.bert.train()
    for _ in range(EPOCHS):
        for batch in _batches([len(t) for t in texts], 32, rng):
            y = torch.tensor(target[batch], dtype=torch.float32)
            train.step(torch.nn.functional.binary_cross_entropy_with_logits(
                model.logits([texts[i] for i in batch]), y
            ))  # fmt: skip
    model.bert.eval()
    return model


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    ap.add_argument("--out", type=Path, default=Path("/tmp/jbdistil"))
    args = ap.parse_args()
    train = read_rows(INJECTION / "train.jsonl", "jailbreak")
    look = [r["text"] for r in rows(LOOKALIKES)]
    transfer = traffic(TRANSFER)
    texts = train.texts + look + transfer
    labelled = np.asarray([*(lab == "injection" for lab in train.labels), *([False] * len(look))])
    t0 = time.perf_counter()
    q = teacher_scores(texts)
    print(f"teacher scored {len(texts)} rows in {time.perf_counter() - t0:.0f} s; "
          f"transfer rows it flags: {(q[len(labelled):] >= 0.5).mean():.1%}")  # fmt: skip
    target = q.copy()
    target[: len(labelled)] = 0.5 * labelled + 0.5 * q[: len(labelled)]
    t0 = time.perf_counter()
    model = fit(texts, target)
    train_s = time.perf_counter() - t0
    args.out.mkdir(parents=True, exist_ok=True)
    _export(model, args.out / "encoder.onnx")
    head = model.head.weight.detach().numpy().astype(np.float32)
    bias = model.head.bias.detach().numpy().astype(np.float32)
    student = TextModel("jailbreak", FINETUNED_ENCODER, ("injection",), ("injection",), head,
                        bias, 0.5, metrics={"source": "none"})  # fmt: skip
    save_model(student, args.out, {"max_tokens": TOKENS, "layers": LAYERS})
    print(f"trained in {train_s:.0f} s; saved {args.out}")

    val = read_rows(INJECTION / "validation.jsonl", "jailbreak")
    truth = np.asarray(val.labels) == "injection"
    sets = {"validation": val.texts, **_sets()}
    ngram = load_model(NGRAM, "jailbreak")
    p = {k: ngram.scores(model_encoder(ngram, "ngram").encode(v)) for k, v in sets.items()}
    enc = finetuned_encoder(args.out)
    speed: dict[str, float] = {}
    models = {
        "shipped ngram (default)": (ngram, None),
        "teacher (variant: finetuned)": (load_model(FINETUNED, "jailbreak"), None),
        "distilled student, 3 layers": (student, enc),
    }
    print("\n| model | val F1 | " + " | ".join(SETS) + " | dcrouter flagged | CLINC150 flagged "
          "| ms a dcrouter prompt |")  # fmt: skip
    print("|---" * (len(SETS) + 5) + "|")
    for name, (m, e) in models.items():
        encoder = e or model_encoder(m, name)
        scored = {}
        for k, v in sets.items():
            t0 = time.perf_counter()
            scored[k] = m.scores(encoder.encode(v))
            if k == "dcrouter":
                speed[name] = 1000 * (time.perf_counter() - t0) / len(v)
        f1 = jailbreak_metrics(scored["validation"], truth, m.threshold)["f1"]
        cells = [f"{int((scored[k] >= m.threshold).sum())}/{len(sets[k])}" for k in SETS]
        shares = [
            f"{100 * (scored[k] >= m.threshold).mean():.1f} %" for k in ("dcrouter", "clinc150")
        ]
        print(f"| {name} | {f1:.4f} | " + " | ".join(cells + shares)
              + f" | {speed[name]:.2f} |")  # fmt: skip
    sent = (p["dcrouter"] >= 0.0895).mean()
    print(f"\n(the n-gram gate at 0.0895 sends {sent:.1%} of these dcrouter prompts on)")


if __name__ == "__main__":
    main()
