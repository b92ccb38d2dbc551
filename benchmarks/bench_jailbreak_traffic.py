"""The shipped ``jailbreak`` signal on ordinary traffic, at several thresholds.

    python benchmarks/bench_jailbreak_traffic.py [--variant cascade] [--examples 5]

Scores, with the signal as served (``JailbreakSignal.compute``): the first 1,500
distinct dcrouter prompts and every 15th CLINC150 train query (benign traffic of
other styles: maths word problems, code, requests addressed to an assistant), the
injection set's validation split, and the probe sets in ``benchmarks/probes/``.
Prints, per threshold, the share flagged of each; with ``--examples`` the
highest-scoring benign queries.  About a minute on two cores.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from polyroute.eval.io import load_dataset
from polyroute.signals.jailbreak import JailbreakSignal
from polyroute.types import Request

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
PROBES = Path(__file__).resolve().parent / "probes" / "jailbreak_heldout.jsonl"
THRESHOLDS = (None, 0.4, 0.5, 0.6, 0.7, 0.8)


def _rows(path: Path) -> list[dict[str, str]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--variant", default=None, help="a shipped variant (default: the default)")
    ap.add_argument("--examples", type=int, default=0, help="list the top benign queries")
    args = ap.parse_args()
    options = {"variant": args.variant} if args.variant else {}
    signal = JailbreakSignal("jailbreak", options, "signals.jailbreak")
    signal.warmup()

    def scores(texts: list[str]) -> np.ndarray:
        return np.array([float(signal.compute(Request.chat(t)) or 0.0) for t in texts])

    dcrouter = list(dict.fromkeys(load_dataset("dcrouter").prompts))[:1500]
    clinc = [r["text"] for r in _rows(SHARED / "guards/domains/clinc150/train.jsonl")][::15]
    val = _rows(SHARED / "guards/injection/validation.jsonl")
    probes = _rows(PROBES)
    sets = {
        "dcrouter": scores(dcrouter),
        "clinc150": scores(clinc[:1500]),
        "val_injection": scores([r["text"] for r in val if r["label"] == "injection"]),
        "val_benign": scores([r["text"] for r in val if r["label"] != "injection"]),
    }
    for name in ("wild_jailbreak", "indirect_injection", "hard_benign", "plain_benign"):
        sets[name] = scores([r["text"] for r in probes if r["set"] == name])
    print("| threshold | " + " | ".join(sets) + " |")
    print("|---" * (len(sets) + 1) + "|")
    for t in THRESHOLDS:
        cut = signal.threshold if t is None else t
        label = f"{cut:.4f} (the model's)" if t is None else f"{cut:.2f}"
        cells = " | ".join(f"{np.mean(v >= cut):.3f}" for v in sets.values())
        print(f"| {label} | {cells} |")
    for name, texts in (("dcrouter", dcrouter), ("clinc150", clinc[:1500])):
        for i in np.argsort(-sets[name])[: args.examples]:
            print(f"{name} {sets[name][i]:.3f} {texts[i][:120]!r}")


if __name__ == "__main__":
    main()
