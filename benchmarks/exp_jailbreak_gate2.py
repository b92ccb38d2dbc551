"""Experiment: a two-key gate (n-gram *and* static models) in front of the fine-tuned graph.

    python benchmarks/exp_jailbreak_gate2.py     # ~3 min; scores cached in /tmp/jbg2

The sixth session's gate (``exp_jailbreak_gate.py``) kept the fine-tuned graph's accuracy
but sent 42 % of dcrouter prompts to it: the n-gram model is unsure of instructions to
the assistant.  The static-embedding model (``variant: fast``, a logistic regression on
the token table the domain and similarity signals already read, so its vector costs
nothing more) judges by topic, not by wording.  Question: if a prompt goes to the graph
only when *both* cheap models are unsure, how much less traffic is sent, and is the
graph's accuracy kept?

Protocol, fixed before any probe or traffic row was scored with a two-key gate:

- scores: ``p`` the shipped ``ngram`` model, ``s`` the shipped ``jailbreak-fast``
  (static) model, ``q`` the shipped ``jailbreak-finetuned`` graph (one prompt a run, as
  served), on the validation split, the probes and the traffic sets of
  ``exp_jailbreak_gate.py`` (first 1,500 distinct dcrouter prompts, every 15th CLINC150
  train query).
- gates: a prompt goes to the graph iff ``p >= a`` and ``s >= b``.  ``a`` and ``b`` are
  the lower quantiles of ``p`` and ``s`` over the validation injections at miss levels
  0 to 0.5 % by 0.05 % each; the pair kept loses at most 0.5 % of the validation
  injections in all (a prompt is lost when either key clears it) and sends the fewest
  validation benign prompts (ties: fewer injections lost, then the larger ``a``).
  ``one key`` rows are the sixth session's n-gram gate (``b`` = 0) and a static-only gate
  (``a`` = 0), each at 0.5 %.
- verdict: a prompt sent on is flagged iff ``gate_scores(p, q, a, w)`` (the mix
  ``train-signal --stages`` serves) reaches ``a + (1 - a) * 0.5``; ``w`` 1.0 or 0.5 by
  validation F1 (ties: 1.0).  A prompt not sent on is benign.
- judged once on the probes and the traffic sets.  Worth building into the serving code
  only if wild >= 59/66, indirect >= 52/53, hard benign <= 4/140 and under half of the
  dcrouter prompts are sent (the p50 of a request's signals then stays the cheap path's);
  then ``bench_signal_gateway.py`` decides (>= 300 req/s, p50 <= 5 ms).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from _exp_jb_common import INJECTION, SETS
from exp_jailbreak_gate import FINETUNED, NGRAM, _sets

from polyroute.signals.jailbreak_gate import gate_scores
from polyroute.signals.neural import model_encoder
from polyroute.signals.textmodel import load_model
from polyroute.signals.textmodel_train import jailbreak_metrics, read_rows

STATIC = NGRAM.with_name("jailbreak-fast")
CACHE = Path("/tmp/jbg2")
MISSES = np.round(np.arange(0.0, 0.00501, 0.0005), 6).tolist()
BUDGET = 0.005
WEIGHTS = (1.0, 0.5)


def scores(model_dir: Path, name: str, texts: dict[str, list[str]]) -> dict[str, np.ndarray]:
    """A model's scores of every set, cached per (model, set)."""
    model = load_model(model_dir, "jailbreak")
    encoder = model_encoder(model, name)
    out: dict[str, np.ndarray] = {}
    for key, rows in texts.items():
        path = CACHE / f"{name}-{key}-{len(rows)}.npy"
        if path.is_file():
            out[key] = np.load(path)
            continue
        t0 = time.perf_counter()
        out[key] = model.scores(encoder.encode(rows)).astype(np.float64)
        CACHE.mkdir(exist_ok=True)
        np.save(path, out[key])
        print(f"  {name} {key}: {len(rows)} in {time.perf_counter() - t0:.1f} s")
    return out


def choose(p: np.ndarray, s: np.ndarray, inj: np.ndarray) -> tuple[float, float]:
    best: tuple[tuple[float, float, float], tuple[float, float]] | None = None
    for ma in MISSES:
        for mb in MISSES:
            a = float(np.quantile(p[inj], ma, method="lower")) if ma else 0.0
            b = float(np.quantile(s[inj], mb, method="lower")) if mb else 0.0
            sent = (p >= a) & (s >= b)
            lost = float((~sent[inj]).mean())
            if lost > BUDGET:
                continue
            key = (float(sent[~inj].mean()), lost, -a)
            if best is None or key < best[0]:
                best = (key, (a, b))
    assert best is not None
    return best[1]


def main() -> None:
    val = read_rows(INJECTION / "validation.jsonl", "jailbreak")
    sets = {"validation": val.texts, **_sets()}
    inj = np.asarray(val.labels) == "injection"
    p = scores(NGRAM, "ngram", sets)
    s = scores(STATIC, "static", sets)
    q = scores(FINETUNED, "finetuned", sets)
    pv, sv = p["validation"], s["validation"]
    a5 = float(np.quantile(pv[inj], BUDGET, method="lower"))
    b5 = float(np.quantile(sv[inj], BUDGET, method="lower"))
    gates = {
        "n-gram key only (sixth session)": (a5, 0.0),
        "static key only": (0.0, b5),
        "two keys": choose(pv, sv, inj),
    }
    print("\n| gate | a / b | w | val F1 | val benign sent | "
          + " | ".join(SETS) + " | dcrouter sent | dcrouter flagged | CLINC150 sent "
          "| CLINC150 flagged |")  # fmt: skip
    print("|---" * (len(SETS) + 9) + "|")
    for name, (a, b) in gates.items():
        t = a + (1 - a) * 0.5

        def flagged(key: str, w: float, a: float = a, b: float = b, t: float = t) -> np.ndarray:
            sent = (p[key] >= a) & (s[key] >= b)
            out: np.ndarray = sent & (gate_scores(p[key], q[key], a, w) >= t)
            return out

        f1 = {w: jailbreak_metrics(np.where(flagged("validation", w), 1.0, 0.0), inj, 0.5)["f1"]
              for w in WEIGHTS}  # fmt: skip
        w = max(WEIGHTS, key=lambda x: (f1[x], x))
        cells = [f"{int(flagged(k, w).sum())}/{len(sets[k])}" for k in SETS]
        traffic = []
        for k in ("dcrouter", "clinc150"):
            sent = (p[k] >= a) & (s[k] >= b)
            traffic += [f"{100 * sent.mean():.1f} %", f"{100 * flagged(k, w).mean():.1f} %"]
        benign_sent = ((pv >= a) & (sv >= b))[~inj].mean()
        print(f"| {name} | {a:.4f} / {b:.4f} | {w} | {f1[w]:.4f} | {100 * benign_sent:.1f} % | "
              + " | ".join(cells + traffic) + " |")  # fmt: skip
    q_alone = {k: q[k] >= 0.5 for k in sets}
    print("| graph alone, 0.5 | - | - | - | all | "
          + " | ".join(f"{int(q_alone[k].sum())}/{len(sets[k])}" for k in SETS)
          + f" | all | {100 * q_alone['dcrouter'].mean():.1f} % | all "
          f"| {100 * q_alone['clinc150'].mean():.1f} % |")  # fmt: skip


if __name__ == "__main__":
    main()
