"""Experiment: the n-gram model as a gate in front of a fine-tuned MiniLM (jailbreak).

    python benchmarks/exp_jailbreak_gate.py                        # the shipped graph
    python benchmarks/exp_jailbreak_gate.py --candidate DIR [--candidate DIR:64 ...]

The question: can the shipped ``ngram`` model send only the prompts it is unsure of to the
fine-tuned graph (``variant: finetuned``: the best accuracy measured, 17 ms a prompt),
and so reach that accuracy at the default's speed?

Protocol, fixed before any probe was scored with a gate (``polyroute.signals.jailbreak_gate``,
the rule ``polyroute train-signal jailbreak --stages`` applies):

- fast stage: the shipped ``ngram`` model; accurate stage: a fine-tuned graph as trained.
- gate: prompts the n-gram model scores below the 0.5 % quantile of its scores on the
  validation injections are benign on its word alone; all others also go to the graph.
- mix: the accurate model's weight, 1.0 or 0.5 (logit average), by validation F1; the
  threshold: the mixed probability 0.5.
- judged once on the probes and ordinary traffic (the first 1,500 distinct dcrouter
  prompts, every 15th CLINC150 train query), with the share of that traffic the gate
  sends to the graph.
- a gate worth making the default must keep the default's recall on the probes (wild
  >= 59/66, indirect >= 52/53), flag <= 4/140 hard-benign prompts, and keep the gateway
  at >= 300 req/s (``bench_signal_gateway.py``).

``DIR:64`` serves the graph of ``DIR`` reading 64 tokens instead of its manifest's.
Candidates trained for this experiment (``--layers 3 --max-tokens 64``, 245 s)::

    polyroute train-signal jailbreak --data shared/data/guards/injection/train.jsonl \\
        --validation shared/data/guards/injection/validation.jsonl \\
        --extra-data polyroute/data/signals/jailbreak-lookalikes.jsonl \\
        --encoder finetuned --layers 3 --max-tokens 64 --out /tmp/ft3
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from pathlib import Path

import numpy as np
from _exp_jb_common import INJECTION, PROBES, SETS, SHARED, rows

from polyroute.eval.io import load_dataset
from polyroute.signals.jailbreak import JailbreakSignal
from polyroute.signals.jailbreak_gate import build_gate
from polyroute.signals.textmodel import default_model_dir
from polyroute.signals.textmodel_train import read_rows
from polyroute.types import Request

NGRAM = default_model_dir("jailbreak")
FINETUNED = NGRAM.with_name("jailbreak-finetuned")


def _sets() -> dict[str, list[str]]:
    probes = rows(PROBES)
    out = {name: [r["text"] for r in probes if r["set"] == name] for name in SETS}
    out["dcrouter"] = list(dict.fromkeys(load_dataset("dcrouter").prompts))[:1500]
    clinc = rows(SHARED / "guards" / "domains" / "clinc150" / "train.jsonl")
    out["clinc150"] = [r["text"] for r in clinc][::15][:1500]
    return out


def _candidate(spec: str, tmp: Path) -> Path:
    """``DIR`` or ``DIR:TOKENS`` (a copy of ``DIR`` whose manifest reads that many)."""
    path, _, tokens = spec.partition(":")
    if not tokens:
        return Path(path)
    copy = tmp / f"{Path(path).name}-{tokens}"
    shutil.copytree(path, copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    (copy / "manifest.json").write_text(json.dumps({**manifest, "max_tokens": int(tokens)}))
    return copy


def _row(name: str, signal: JailbreakSignal, sets: dict[str, list[str]], extra: str) -> str:
    flagged = {k: [signal.fires(signal.compute(Request.chat(t))) for t in v]
               for k, v in sets.items()}  # fmt: skip
    counts = [f"{sum(flagged[s])}/{len(flagged[s])}" for s in SETS]
    shares = [f"{100 * np.mean(flagged[s]):.1f} %" for s in ("dcrouter", "clinc150")]
    return f"| {name} | {extra} | " + " | ".join(counts + shares) + " |"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--candidate", action="append", default=[], metavar="DIR[:TOKENS]")
    args = ap.parse_args()
    validation = read_rows(INJECTION / "validation.jsonl", "jailbreak")
    sets = _sets()
    header = "| model | val F1 / share sent to the graph | " + " | ".join(SETS)
    print(header + " | dcrouter flagged | CLINC150 flagged |")
    print("|---" * (len(SETS) + 4) + "|")
    ngram = JailbreakSignal("jb", {"model": str(NGRAM)})
    ngram.warmup()
    print(_row("shipped ngram", ngram, sets, "-"))
    with tempfile.TemporaryDirectory() as tmp:
        for spec in args.candidate or [str(FINETUNED)]:
            accurate = _candidate(spec, Path(tmp))
            alone = JailbreakSignal("jb", {"model": str(accurate)})
            alone.warmup()
            print(_row(f"{spec} alone, 0.5", alone, sets, "-"))
            out = Path(tmp) / f"gate-{len(list(Path(tmp).iterdir()))}"
            manifest = build_gate(NGRAM, accurate, validation, out)
            gate = JailbreakSignal("jb", {"model": str(out)})
            gate.warmup()
            sent_on = [gate.encoder_texts(Request.chat(t)) != () for t in sets["dcrouter"]]
            sent = f"{100 * np.mean(sent_on):.0f} %"
            what = f"{manifest['metrics']['f1']:.4f} / {sent} of dcrouter"
            name = f"gate -> {spec} (w {manifest['accurate_weight']})"
            print(_row(name, gate, sets, what))


if __name__ == "__main__":
    main()
