"""Experiment: a small trained head over FROZEN MiniLM token states for ``jailbreak``,
alone and as the second stage after the shipped n-gram model.

Protocol (written before any probe was scored; the probes choose nothing):

- Token states: the last hidden layer of all-MiniLM-L6-v2 (the model
  ``polyroute.embed_onnx`` runs), exported to ONNX with ``last_hidden_state`` as output,
  the bundled tokenizer truncated to 128 tokens (``_exp_jbt_states.py``, cached in
  /tmp/jbt/).  MiniLM itself is never trained.
- Head (torch, trained; served as a few numpy arrays): states standardised per
  dimension (train-token mean/sd), optionally a token-wise ``Linear(384, 128) + GELU``;
  then H learned attention queries (softmax over the prompt's tokens), max pooling and
  mean pooling, concatenated, one logistic output.  Settings: arch ``lin`` (no
  projection, H=1, ~1.5k weights) or ``mlp`` (projection 128, H=2, ~50k weights) x
  training rows {train + L, train + L + B weight 1, train + L + B weight 4}; L = the
  shipped 298 look-alikes (``polyroute/data/signals/jailbreak-lookalikes.jsonl``), B =
  the earlier helper's 696 generated benign rows (/tmp/jbx/benign.jsonl).  AdamW
  lr 2e-3, weight decay 1e-4, 12 epochs, batches of 64 (length-bucketed), seed 0.
- Forms scored for each head setting: (a) the head alone; (b) a cascade after the
  shipped n-gram recipe (ngram + LR C=16 on train + L; in the final run the shipped
  model, loaded): a prompt whose n-gram probability ``p`` is below ``low`` keeps ``p``;
  one at or above (flagged or uncertain) gets ``low + (1 - low) * sigmoid((1 - a) *
  logit(p) + a * logit(q))``, ``q`` the head's probability, so the head can clear a
  prompt the n-gram model flags.  Grid: low in {0, 0.05, 0.1, 0.2, 0.3} (0 = mix the
  logits for every prompt), a in {0.5, 0.75, 1}.
- Cross-validation: 5 stratified folds of train (seed 0), each generated template group
  (L and B) whole in one fold (``exp_jailbreak_benign.fold_plan``); the n-gram stage and
  the head are both refit per fold.  Out-of-fold threshold = lowest flagging <= 3 % of
  out-of-fold train benign rows; "CV recall" = out-of-fold recall there; "gen flagged" =
  share of held-out generated rows (L and B together) flagged at it.
- Choice: per form ((a) alone, (b) cascade) the most CV recall among candidates with gen
  flagged <= 3 %; ties within 0.001: fewer train rows sent to MiniLM, then ``lin`` before
  ``mlp``, then fewer generated rows.  If none meets 3 %, the fewest gen flagged, said so.
- Outcome of CV, recorded before any probe was scored: nothing meets the 3 % on held-out
  generated rows (shipped n-gram recipe: 10.7 %, CV recall 0.971; heads alone 7.4-12 %,
  cascades 6.4-12 %; a second round, gen weight 16 and 64 for ``mlp``, added after the
  first CV, still 8.7-9.3 %).  The fallback picks ``lin, L+B, weight 4`` (alone: CV
  recall 0.908; cascade low 0.05, a 1: 0.943).  Fixed at the same time, also scored per
  form: the most CV recall (alone: ``mlp, L`` 0.975; cascade: ``mlp, L+B w1``, low 0.05,
  a 0.5: 0.990) and the fewest gen flagged among those with CV recall >= the n-gram
  recipe's (alone: ``mlp, L+B w16`` 0.972 / 8.7 %; cascade: ``lin, L+B w4``, low 0.1,
  a 0.75: 0.974 / 8.0 %).
- Then, once, the candidates chosen (refit on all their rows), the shipped model (loaded) and the
  TF-IDF word 1-2 + LR (C=4) baseline, each at the lowest threshold flagging <= 3 % of
  validation benign: validation F1, the probe sets (``bench_jailbreak_heldout.py``'s
  file and sets), the share flagged of dcrouter's first 1,500 distinct prompts and every
  15th CLINC150 train query (``bench_jailbreak_traffic.py``'s sets), the share of each
  set sent to MiniLM, and ms/prompt (one prompt, 1 thread, featurise + score, the
  MiniLM run included when the prompt reaches it; median and mean over 100 probes).

Outcome (final run, after the above): no candidate meets the bar.  Heads trained on the
short train prompts (median 12 tokens) lose indirect injections (38-48/53 vs 52/53) on
the longer probes (median 46 tokens).  POST-HOC, after reading those probe numbers:
``--posthoc`` adds 4,000 train-row concatenations (``bench_jailbreak_heldout.augment``)
to ``mlp, L+B`` (CV recall alone 0.968, cascade 0.987 / gen flagged 12-13 %): wild
63-65/66 and indirect 52/53, but hard benign 12/140 and dcrouter 31-32 % flagged.

    python benchmarks/_exp_jbt_states.py          # token states, ~40 s
    python benchmarks/exp_jailbreak_tokens.py     # CV + final, see the log
    python benchmarks/exp_jailbreak_tokens.py --cv-only
    python benchmarks/exp_jailbreak_tokens.py --posthoc   # the post-hoc augmented head
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse
import json
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _exp_jb_common import MAX_FPR, SETS  # noqa: E402
from _exp_jbt_data import Set, add_augmentation, load_all  # noqa: E402
from _exp_jbt_head import Pool, fit_head, head_scores, token_stats  # noqa: E402

OUT = Path("/tmp/jbt")
LOWS = (0.0, 0.05, 0.1, 0.2, 0.3)
ALPHAS = (0.5, 0.75, 1.0)
EPS = 1e-6


# --------------------------------------------------------------------------- head


@dataclass(frozen=True)
class HeadSetting:
    arch: str  # "lin" | "mlp"
    rows: str  # "L" | "LB"
    weight: float

    @property
    def name(self) -> str:
        return f"head {self.arch}, rows {'+'.join(self.rows)}, gen weight {self.weight:g}"


HEAD_SETTINGS = (
    *(HeadSetting(a, "L", 1.0) for a in ("lin", "mlp")),
    *(HeadSetting(a, "LB", w) for a in ("lin", "mlp") for w in (1.0, 4.0)),
    # second round, added after the first CV (nothing met the 3 %; no probe scored yet)
    *(HeadSetting("mlp", "LB", w) for w in (16.0, 64.0)),
)
#: POST-HOC, after the probes were scored: + 4,000 train-row concatenations (``--posthoc``)
POSTHOC_SETTINGS = (HeadSetting("mlp", "LBA", 1.0),)


# --------------------------------------------------------------------------- forms


def logit(p: Any) -> Any:
    p = np.clip(np.asarray(p, dtype=np.float64), EPS, 1 - EPS)
    return np.log(p / (1 - p))


def cascade(p: Any, q: Any, low: float, a: float) -> tuple[Any, Any]:
    """(score float32, sent bool): below ``low`` the n-gram score, else the mixed one."""
    sent = p >= low
    mix = 1 / (1 + np.exp(-((1 - a) * logit(p) + a * logit(q))))
    return np.where(sent, low + (1 - low) * mix, p).astype(np.float32), sent


def ngram_fit(train: Set, look: Set, tr: Any, look_rows: Any) -> Any:
    """The shipped recipe: ngram + LR C=16 on train rows + look-alikes L."""
    import scipy.sparse as sp
    from sklearn.linear_model import LogisticRegression

    x = sp.vstack([train.ngram[tr], look.ngram[look_rows]]).tocsr()
    y = np.concatenate([train.y[tr], np.zeros(len(look_rows), dtype=bool)])
    return LogisticRegression(C=16.0, max_iter=3000).fit(x, y)


def fold_plan_of(data: dict[str, Set]) -> tuple[list[Any], dict[str, int]]:
    from exp_jailbreak_benign import fold_plan

    @dataclass
    class G:
        y: Any
        groups: list[str]

    return fold_plan(G(data["train"].y, []), [G(None, data["L"].groups), G(None, data["B"].groups)])


def oof_ngram(data: dict[str, Set]) -> dict[str, Any]:
    path = OUT / "oof_ngram.npz"
    if path.exists():
        return dict(np.load(path))
    train, look, ben = data["train"], data["L"], data["B"]
    folds, fold_of = fold_plan_of(data)
    fl = np.asarray([fold_of[g] for g in look.groups])
    fb = np.asarray([fold_of[g] for g in ben.groups])
    out = {"train": np.zeros(len(train.y), np.float32), "L": np.zeros(len(look.y), np.float32),
           "B": np.zeros(len(ben.y), np.float32)}  # fmt: skip
    for k, (tr, te) in enumerate(folds):
        lr = ngram_fit(train, look, tr, np.flatnonzero(fl != k))
        out["train"][te] = lr.predict_proba(train.ngram[te])[:, 1]
        for name, s, f in (("L", look, fl), ("B", ben, fb)):
            if (f == k).any():
                out[name][f == k] = lr.predict_proba(s.ngram[f == k])[:, 1]
    np.savez(path, **out)
    return out


def oof_head(hs: HeadSetting, data: dict[str, Set]) -> dict[str, Any]:
    path = OUT / f"oof_{hs.arch}_{hs.rows}_{hs.weight:g}.npz"
    if path.exists():
        return dict(np.load(path))
    train, look, ben = data["train"], data["L"], data["B"]
    folds, fold_of = fold_plan_of(data)
    fl = np.asarray([fold_of[g] for g in look.groups])
    fb = np.asarray([fold_of[g] for g in ben.groups])
    mu, sd = token_stats(train)
    out = {"train": np.zeros(len(train.y), np.float32), "L": np.zeros(len(look.y), np.float32),
           "B": np.zeros(len(ben.y), np.float32)}  # fmt: skip
    t0 = time.perf_counter()
    for k, (tr, te) in enumerate(folds):
        parts = [(train, tr, 1.0), (look, np.flatnonzero(fl != k), hs.weight)]
        if "B" in hs.rows:
            parts.append((ben, np.flatnonzero(fb != k), hs.weight))
        if "A" in hs.rows:  # concatenations built only from this fold's train rows
            inside = np.zeros(len(train.y), dtype=bool)
            inside[tr] = True
            parts.append((data["A"], np.flatnonzero(inside[data["A"].src].all(1)), 1.0))
        model = fit_head(hs.arch, Pool(parts, mu, sd))
        out["train"][te] = head_scores(model, train, te, mu, sd)
        out["L"][fl == k] = head_scores(model, look, np.flatnonzero(fl == k), mu, sd)
        out["B"][fb == k] = head_scores(model, ben, np.flatnonzero(fb == k), mu, sd)
    out["seconds"] = np.asarray(time.perf_counter() - t0)
    np.savez(path, **out)
    return out


def cv_row(name: str, score: Any, sent: Any, y: Any, **extra: Any) -> dict[str, Any]:
    from polyroute.signals.textmodel_train import jailbreak_metrics, jailbreak_threshold

    thr = jailbreak_threshold(score["train"], y, MAX_FPR)
    rec = float(jailbreak_metrics(score["train"], y, thr)["recall"])
    flagged = np.concatenate([score["L"] >= thr, score["B"] >= thr])
    return {"candidate": name, "cv_recall": round(rec, 4),
            "gen_flagged": round(float(flagged.mean()), 4),
            "L_flagged": round(float((score["L"] >= thr).mean()), 4),
            "B_flagged": round(float((score["B"] >= thr).mean()), 4),
            "train_sent": round(float(sent.mean()), 4), "oof_threshold": round(thr, 4),
            **extra}  # fmt: skip


def cross_validate(data: dict[str, Set], settings: Any) -> list[dict[str, Any]]:
    y = data["train"].y
    ng = oof_ngram(data)
    out = [cv_row("ngram alone (shipped recipe)", ng, np.zeros(len(y), bool), y,
                  form="ngram")]  # fmt: skip
    for hs in settings:
        hd = oof_head(hs, data)
        print(json.dumps({"fitted": hs.name, "s": round(float(hd["seconds"]), 1)}), flush=True)
        out.append(cv_row(hs.name + " | alone", hd, np.ones(len(y), bool), y, form="alone",
                          setting=hs.name, low=None, a=None))  # fmt: skip
        for low in LOWS:
            for a in ALPHAS:
                sc = {k: cascade(ng[k], hd[k], low, a)[0] for k in ("train", "L", "B")}
                sent = ng["train"] >= low
                out.append(cv_row(f"{hs.name} | cascade low {low:g}, a {a:g}", sc, sent, y,
                                  form="cascade", setting=hs.name, low=low, a=a))  # fmt: skip
    return out


def choose(results: list[dict[str, Any]], form: str) -> tuple[dict[str, Any], bool]:
    cands = [r for r in results if r["form"] == form]
    ok = [r for r in cands if r["gen_flagged"] <= MAX_FPR]
    if not ok:
        return min(cands, key=lambda r: (r["gen_flagged"], -r["cv_recall"])), False
    best = max(r["cv_recall"] for r in ok)
    near = [r for r in ok if r["cv_recall"] >= best - 0.001]
    near.sort(key=lambda r: (r["train_sent"], "mlp" in r["setting"], "LB" in r["setting"],
                             -r["cv_recall"]))  # fmt: skip
    return near[0], True


# --------------------------------------------------------------------------- final


class Served:
    """A head as served: numpy arrays only (the ``arrays`` dict)."""

    def __init__(self, model: Any, arch: str, mu: Any, sd: Any) -> None:
        sdict = {k: v.detach().numpy().astype(np.float32) for k, v in model.state_dict().items()}
        self.arrays = {"mu": mu.astype(np.float32), "sd": sd.astype(np.float32),
                       "query": sdict["q"], "out_w": sdict["out.weight"][0],
                       "out_b": sdict["out.bias"]}  # fmt: skip
        if arch == "mlp":
            self.arrays["proj_w"] = sdict["proj.weight"].T.copy()
            self.arrays["proj_b"] = sdict["proj.bias"]

    def prob(self, h: Any) -> float:
        a = self.arrays
        z = (h - a["mu"]) / a["sd"]
        if "proj_w" in a:
            u = z @ a["proj_w"] + a["proj_b"]
            z = 0.5 * u * (1 + _erf(u / math.sqrt(2)))
        s = a["query"] @ z.T / math.sqrt(z.shape[1])  # [heads x tokens]
        s = np.exp(s - s.max(1, keepdims=True))
        s /= s.sum(1, keepdims=True)
        feats = np.concatenate([(s @ z).ravel(), z.max(0), z.mean(0)])
        return float(1 / (1 + math.exp(-(feats @ a["out_w"] + a["out_b"][0]))))


def _erf(x: Any) -> Any:
    from scipy.special import erf

    return erf(x)


def final(data: dict[str, Set], picks: list[tuple[str, dict[str, Any]]]) -> list[dict[str, Any]]:
    from _exp_jbt_states import TokenRuntime

    from polyroute.embed_ngram import features
    from polyroute.signals.textmodel import default_model_dir, load_model
    from polyroute.signals.textmodel_train import jailbreak_metrics, jailbreak_threshold

    ev = ("validation", "probes", "dcrouter", "clinc")
    val = data["validation"]
    texts = data["probes"].texts[:100]
    runtime = TokenRuntime(threads=1)

    def ms_of(score: Any) -> tuple[float, float]:
        score(texts[0] + " #warm")
        times = []
        for k, t in enumerate(texts):
            start = time.perf_counter()
            score(f"{t} #{k}")
            times.append(time.perf_counter() - start)
        return round(float(np.median(times)) * 1e3, 2), round(float(np.mean(times)) * 1e3, 2)

    def judge(name: str, sc: dict[str, Any], sent: dict[str, Any] | None,
              ms: Any) -> dict[str, Any]:  # fmt: skip
        thr = jailbreak_threshold(sc["validation"], val.y, MAX_FPR)
        m = jailbreak_metrics(sc["validation"], val.y, thr)
        row: dict[str, Any] = {"model": name, "threshold": round(thr, 4), "val_f1": m["f1"],
                               "val_fpr": m["fpr"], "ms_median": ms[0],
                               "ms_mean": ms[1]}  # fmt: skip
        flags = sc["probes"] >= thr
        sets = np.asarray(data["probes"].sets)
        for s in SETS:
            row[s] = f"{int(flags[sets == s].sum())}/{int((sets == s).sum())}"
        for s in ("dcrouter", "clinc"):
            row[s] = round(float((sc[s] >= thr).mean()), 3)
        row["sent"] = {k: round(float(v.mean()), 3) for k, v in (sent or {}).items()}
        return row

    out = []
    shipped = load_model(default_model_dir("jailbreak"), "jailbreak")
    assert shipped.encoder == "ngram"
    p = {k: shipped.scores(data[k].ngram).astype(np.float32) for k in ev}
    ms = ms_of(lambda t: float(shipped.scores(features(t)[None])[0]))
    out.append(judge("shipped (ngram + L, C=16)", p, None, ms))

    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    train = data["train"]
    vec = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True).fit(train.texts)
    base = LogisticRegression(C=4.0, max_iter=3000).fit(vec.transform(train.texts), train.y)
    sc = {k: base.predict_proba(vec.transform(data[k].texts))[:, 1].astype(np.float32) for k in ev}
    ms = ms_of(lambda t: float(base.predict_proba(vec.transform([t]))[0, 1]))
    out.append(judge("baseline TF-IDF word 1-2 + LR (C=4)", sc, None, ms))

    mu, sd = token_stats(train)
    fitted: dict[str, tuple[Any, Served, dict[str, Any]]] = {}
    for label, pick in picks:
        hs = next(h for h in (*HEAD_SETTINGS, *POSTHOC_SETTINGS) if h.name == pick["setting"])
        if hs.name not in fitted:
            t0 = time.perf_counter()
            parts = [(train, np.arange(len(train.y)), 1.0),
                     (data["L"], np.arange(len(data["L"].y)), hs.weight)]  # fmt: skip
            if "B" in hs.rows:
                parts.append((data["B"], np.arange(len(data["B"].y)), hs.weight))
            if "A" in hs.rows:
                parts.append((data["A"], np.arange(len(data["A"].y)), 1.0))
            model = fit_head(hs.arch, Pool(parts, mu, sd))
            secs = time.perf_counter() - t0
            served = Served(model, hs.arch, mu, sd)
            q = {k: head_scores(model, data[k], np.arange(len(data[k].y)), mu, sd) for k in ev}
            fitted[hs.name] = (model, served, q)
            shapes = {k: list(v.shape) for k, v in served.arrays.items()}
            print(json.dumps({"fitted": hs.name, "train_s": round(secs, 1), "arrays": shapes}),
                  flush=True)  # fmt: skip
            np.savez(OUT / f"head_{hs.arch}_{hs.rows}_{hs.weight:g}.npz", **served.arrays)
        _, served, q = fitted[hs.name]
        # check: the numpy head equals the torch one on a few probes
        for t, want in list(zip(data["probes"].texts, q["probes"], strict=True))[:5]:
            assert abs(served.prob(runtime.states([t])[0]) - want) < 1e-3
        if pick["form"] == "alone":
            ms = ms_of(lambda t, served=served: served.prob(runtime.states([t])[0]))
            sent = {k: np.ones(len(data[k].y), bool) for k in ev}
            out.append(judge(f"{label} alone: {hs.name}", q, sent, ms))
        else:
            low, a = float(pick["low"]), float(pick["a"])
            both = {k: cascade(p[k], q[k], low, a) for k in ev}

            def one(t: str, low: float = low, a: float = a, served: Served = served) -> float:
                pp = float(shipped.scores(features(t)[None])[0])
                if pp < low:
                    return pp
                qq = served.prob(runtime.states([t])[0])
                return float(cascade(np.asarray([pp]), np.asarray([qq]), low, a)[0][0])

            ms = ms_of(one)
            name = f"{label} cascade: shipped ngram -> {hs.name}, low {low:g}, a {a:g}"
            out.append(judge(name, {k: v[0] for k, v in both.items()},
                             {k: v[1] for k, v in both.items()}, ms))  # fmt: skip
    return out


def main() -> None:
    import torch

    ap = argparse.ArgumentParser()
    ap.add_argument("--cv-only", action="store_true")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--posthoc", action="store_true",
                    help="only the post-hoc head with concatenation augmentation")  # fmt: skip
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    data = load_all()
    print(json.dumps({k: len(s.y) for k, s in data.items()}), flush=True)
    settings = HEAD_SETTINGS
    if args.posthoc:
        add_augmentation(data)
        settings = POSTHOC_SETTINGS
    results = cross_validate(data, settings)
    with (OUT / ("cv_posthoc.jsonl" if args.posthoc else "cv.jsonl")).open("w") as f:
        for r in results:
            f.write(json.dumps(r) + "\n")
    print(json.dumps(results[0]))
    for form in ("alone", "cascade"):
        for r in sorted((r for r in results if r["form"] == form and (r["low"] in (None, 0.1))
                         and r["a"] in (None, 1.0)), key=lambda r: r["candidate"]):  # fmt: skip
            print(json.dumps(r))
    picks = []
    floor = results[0]["cv_recall"]  # the shipped n-gram recipe's CV recall
    for form in ("alone", "cascade"):
        pick, meets = choose(results, form)
        print(json.dumps({"chosen": pick, "meets_gen_3pct": meets}), flush=True)
        cands = [r for r in results if r["form"] == form]
        top = max(cands, key=lambda r: r["cv_recall"])
        kept = [r for r in cands if r["cv_recall"] >= floor] or [top]
        fewest = min(kept, key=lambda r: (r["gen_flagged"], -r["cv_recall"]))
        labels = (("RULE", pick), ("MAX-CV", top), ("FEWEST-GEN@CV>=ngram", fewest))
        if args.posthoc:
            labels = (("POSTHOC", pick if form == "alone" else top),)
        for label, r in labels:
            if all(r is not x for _, x in picks):
                picks.append((label, r))
                print(json.dumps({"scored": label, **r}), flush=True)
    print(f"CV done {time.perf_counter() - started:.0f} s", flush=True)
    if args.cv_only:
        return
    table = final(data, picks)
    for row in table:
        print(json.dumps(row), flush=True)
    print("| model | val F1 | wild | indirect | hard-benign | plain-benign | dcrouter | CLINC "
          "| sent to MiniLM (val/probes/dcrouter/CLINC) | threshold | ms/prompt median (mean) |\n|"
          + "---|" * 11)  # fmt: skip
    for r in table:
        sent = "/".join(f"{v:.1%}" for v in r["sent"].values()) or "0"
        print(f"| {r['model']} | {r['val_f1']:.4f} | {r['wild_jailbreak']} "
              f"| {r['indirect_injection']} | {r['hard_benign']} | {r['plain_benign']} "
              f"| {r['dcrouter']:.1%} | {r['clinc']:.1%} | {sent} | {r['threshold']:.4f} "
              f"| {r['ms_median']} ({r['ms_mean']}) |")  # fmt: skip
    print(f"total {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
