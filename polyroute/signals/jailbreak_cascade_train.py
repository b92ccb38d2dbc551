"""Training a two-stage ``jailbreak`` cascade (``polyroute.signals.jailbreak_cascade``).

Both stages are fitted on the training rows plus the ``extra`` rows (benign look-alikes:
they join every fit, never the scored rows).  On the same 5 stratified folds as
``train_jailbreak``, each stage gets out-of-fold scores on the training rows, and the
extra rows get scores from fold models that did not see their group (an extra row's
``group``, say its template, decides its fold; without one, its index does).  Then,
on those scores only, every candidate (the accurate stage's C in ``ACCURATE_C``, the
weight ``w`` in ``WEIGHTS``, the band ``[low, high)`` from quantiles of the fast stage's
out-of-fold scores sending at most ``max_share`` of the training rows on) is judged at
its own out-of-fold threshold (``max_fpr`` benign false positives): the most recall
among candidates flagging at most ``max_fpr`` of the held-out extra rows wins (ties:
the smaller share sent, then the larger w, the smaller C, the narrower band).  With
``traffic`` (unlabelled prompts standing for what a gateway sees, say unrelated benign
requests; the distinct prompts of each file), the band must also
send at most ``max_share`` of each traffic set on, as scored by the full fast stage:
prompts far from the training data are where the fast stage is unsure, and MiniLM
costs milliseconds.  The fast
stage keeps its own threshold (for when MiniLM cannot run); the cascade's threshold is
calibrated as ``train_jailbreak``'s: on ``validation`` if given, else out of fold.
Prompts of more than twice the longest training prompt's words stay with the fast stage.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from polyroute.embed import Array, make_encoder
from polyroute.signals.jailbreak_cascade import JailbreakCascade
from polyroute.signals.textmodel import TextModel
from polyroute.signals.textmodel_train import (
    FOLDS,
    Rows,
    _check_classes,
    _folds,
    jailbreak_fit,
    jailbreak_metrics,
    jailbreak_threshold,
    refuse_weights,
)

ACCURATE_C = (1.0, 4.0, 16.0)
WEIGHTS = (1.0, 0.75, 0.5)
MAX_SHARE = 0.10
GRID = 201  # candidate cuts: quantiles of the fast stage's out-of-fold scores
WORDS_FACTOR = 2
MIN_PER_LABEL = FOLDS  # every fold holds out rows of both labels
CHUNK = 512


def _encode(encoder: str, texts: Sequence[str]) -> Any:
    """The rows of ``texts``; wide (n-gram) rows as a sparse matrix, built in chunks."""
    enc = make_encoder(encoder).fit(texts)
    if encoder != "ngram":
        return enc.encode(texts)
    from scipy.sparse import csr_matrix, vstack

    parts = [csr_matrix(enc.encode(texts[i : i + CHUNK])) for i in range(0, len(texts), CHUNK)]
    return vstack(parts).tocsr() if parts else csr_matrix(enc.encode([]))


def _stack(a: Any, b: Any) -> Any:
    from scipy.sparse import issparse, vstack

    return vstack([a, b]).tocsr() if issparse(a) else np.vstack([a, b])


def _extra_folds(extra: Rows, folds: int = FOLDS) -> Any:
    """The fold of each extra row: the k-th group name (sorted) in fold k % ``folds``;
    without groups, by the row's index."""
    if extra.groups is None:
        return np.arange(len(extra.texts)) % folds
    order = {g: k for k, g in enumerate(sorted(set(extra.groups)))}
    return np.asarray([order[g] % folds for g in extra.groups], dtype=np.int64)


def _stage_oof(
    data: tuple[Any, Any], y: list[str], folds: tuple[list[tuple[Any, Any]], Any], c: float,
    encoder: str,
) -> tuple[Array, Array]:  # fmt: skip
    """Out-of-fold scores of the training rows and held-out-group scores of the extras
    (``data``: the training rows' and the extra rows' features; ``folds``: the training
    folds and each extra row's fold)."""
    (x, xe), (splits, efold) = data, folds
    oof = np.zeros(len(y), dtype=np.float32)
    held = np.zeros(len(efold), dtype=np.float32)
    for k, (train, test) in enumerate(splits):
        keep = efold != k
        labels = [y[i] for i in train] + ["benign"] * int(keep.sum())
        fit = jailbreak_fit(_stack(x[train], xe[keep]), labels, c, encoder)
        oof[test] = fit.scores(x[test])
        if (~keep).any():
            held[~keep] = fit.scores(xe[~keep])
    return oof, held


def cascade_scores(p: Array, q: Array, low: float, high: float, w: float) -> Array:
    """The cascade's scores from both stages' probabilities (vectorised ``combine``)."""
    eps = 1e-7
    lp, lq = (np.log(np.clip(v, eps, 1 - eps) / (1 - np.clip(v, eps, 1 - eps))) for v in (p, q))
    mixed = 1.0 / (1.0 + np.exp(-np.clip((1 - w) * lp + w * lq, -60.0, 60.0)))
    inside = (p >= low) & (p < high)
    out: Array = np.where(inside, low + (high - low) * mixed, p).astype(np.float32)
    return out


def read_traffic(path: str | Path) -> list[str]:
    """The distinct prompts (``text`` or ``prompt``) of a JSON-lines file."""
    from polyroute.errors import ConfigError
    from polyroute.jsonio import json_lines

    file = Path(path)
    seen: dict[str, None] = {}
    for number, row in json_lines(file):
        text = row.get("text", row.get("prompt"))
        if not isinstance(text, str):
            raise ConfigError(f"{file}:{number}: expected a string 'text' or 'prompt'")
        seen.setdefault(text)
    if not seen:
        raise ConfigError(f"{file}: no prompts")
    return list(seen)


def choose(fast: tuple[Array, Array], accurate: dict[float, tuple[Array, Array]],
           positive: Any, max_fpr: float, max_share: float, *,
           traffic: Sequence[tuple[Array, Any]] = ()) -> dict[str, float]:  # fmt: skip
    """The candidate the module docstring's rule picks, with its out-of-fold numbers
    (``traffic``: each set's fast-stage scores and which of its prompts may go on)."""
    p, pe = fast
    cuts = np.unique(np.quantile(p, np.linspace(0.0, 1.0, GRID)))
    best: tuple[tuple[float, ...], dict[str, float]] | None = None
    for c, (q, qe) in accurate.items():
        for w in WEIGHTS:
            for i, low in enumerate(cuts):
                for high in cuts[i + 1 :]:
                    share = float(((p >= low) & (p < high)).mean())
                    if share > max_share:
                        break
                    if any(_sent(t, low, high) > max_share for t in traffic):
                        continue
                    s = cascade_scores(p, q, float(low), float(high), w)
                    cut = jailbreak_threshold(s, positive, max_fpr)
                    extra_fpr = float((cascade_scores(pe, qe, low, high, w) >= cut).mean())
                    if extra_fpr > max_fpr:
                        continue
                    recall = round(float((s[positive] >= cut).mean()), 4)
                    key = (-recall, round(share, 4), -w, c, float(high - low))
                    if best is None or key < best[0]:
                        best = (key, {"c": c, "weight": w, "low": float(low), "high": float(high),
                                      "recall": recall, "extra_fpr": round(extra_fpr, 4),
                                      "accurate_share": round(share, 4)})  # fmt: skip
    if best is None:
        return {"c": ACCURATE_C[0], "weight": 1.0, "low": 1.0, "high": 1.0}  # no band: fast only
    return best[1]


def _traffic(fast: TextModel, encoder: str, texts: Sequence[str], words: int) -> tuple[Array, Any]:
    """A traffic set's fast-stage scores and which of its prompts may go on (word cap)."""
    eligible = np.asarray([not words or len(t.split()) <= words for t in texts])
    return fast.scores(_encode(encoder, texts)), eligible


def _sent(traffic: tuple[Array, Any], low: float, high: float) -> float:
    scores, eligible = traffic
    return float(((scores >= low) & (scores < high) & eligible).mean())


def train_jailbreak_cascade(
    rows: Rows,
    *,
    fast_encoder: str = "ngram",
    accurate_encoder: str = "minilm",
    validation: Rows | None = None,
    c: float = 16.0,
    max_fpr: float = 0.03,
    extra: Sequence[Rows] = (),
    max_share: float = MAX_SHARE,
    max_words: int | None = None,
    traffic: Sequence[Sequence[str]] = (),
    where: str = "training data",
) -> JailbreakCascade:
    """Both stages, the band and the weight (see the module docstring)."""
    refuse_weights(where, rows, validation, *extra)
    more = _merged_extra(rows, extra, where)
    y = ["injection" if lab == "injection" else "benign" for lab in rows.labels]
    positive = np.asarray(y) == "injection"
    splits = _folds(y)
    folds = (splits, _extra_folds(more, len(splits)))
    x1, xe1 = _encode(fast_encoder, rows.texts), _encode(fast_encoder, more.texts)
    x2, xe2 = _encode(accurate_encoder, rows.texts), _encode(accurate_encoder, more.texts)
    fast_oof = _stage_oof((x1, xe1), y, folds, c, fast_encoder)
    slow_oof = {c2: _stage_oof((x2, xe2), y, folds, c2, accurate_encoder) for c2 in ACCURATE_C}
    benign = ["benign"] * len(more.texts)
    fast = jailbreak_fit(_stack(x1, xe1), y + benign, c, fast_encoder)
    words = max_words if max_words is not None else WORDS_FACTOR * max(
        len(t.split()) for t in rows.texts)  # fmt: skip
    seen = [_traffic(fast, fast_encoder, ts, words) for ts in traffic]
    pick = choose(fast_oof, slow_oof, positive, max_fpr, max_share, traffic=seen)
    slow = jailbreak_fit(_stack(x2, xe2), y + benign, pick["c"], accurate_encoder)
    low, high, w = round(pick["low"], 6), round(pick["high"], 6), pick["weight"]
    oof = cascade_scores(fast_oof[0], slow_oof[pick["c"]][0], low, high, w)
    alone_cut = jailbreak_threshold(fast_oof[0], positive, max_fpr)
    cv: dict[str, Any] = {
          "recall_fast_alone": jailbreak_metrics(fast_oof[0], positive, alone_cut)["recall"],
          **jailbreak_metrics(oof, positive, jailbreak_threshold(oof, positive, max_fpr)),
          **pick}  # fmt: skip
    if seen:
        cv["traffic_share"] = [round(_sent(t, low, high), 4) for t in seen]
    model = JailbreakCascade(fast, slow, low, high, w, 0.0, words or None,
                             {"max_fpr": max_fpr, "extra_rows": len(more.texts),
                              "accurate_c": pick["c"], "cross_validation": cv})  # fmt: skip
    if validation is None:
        scored = (fast_oof[0], oof, positive, f"{len(splits)}-fold cross-validation")
    else:
        truth = np.asarray(validation.labels) == "injection"
        v1 = fast.scores(_encode(fast_encoder, validation.texts))
        v2 = slow.scores(_encode(accurate_encoder, validation.texts))
        scored = (v1, cascade_scores(v1, v2, low, high, w), truth, "validation")
    return _calibrate(model, scored, max_fpr)


def _merged_extra(rows: Rows, extra: Sequence[Rows], where: str) -> Rows:
    """The extra rows as one set (each row's group, else its own), after the checks."""
    from polyroute.errors import ConfigError

    _check_classes(rows, "jailbreak", where)
    counts = [sum(lab == k for lab in rows.labels) for k in ("injection", "benign")]
    if min(counts) < MIN_PER_LABEL:
        raise ConfigError(f"{where}: a cascade needs at least {MIN_PER_LABEL} rows of each label")
    groups = [g for r in extra for g in (r.groups or [f"row{i}" for i in range(len(r.texts))])]
    more = Rows([t for r in extra for t in r.texts], [lab for r in extra for lab in r.labels],
                None, groups)  # fmt: skip
    if any(lab != "benign" for lab in more.labels):
        raise ConfigError(f"{where}: a cascade's extra rows must all be benign")
    return more


def _calibrate(
    model: JailbreakCascade, scored: tuple[Array, Array, Any, str], max_fpr: float
) -> JailbreakCascade:
    """Both thresholds (the fast stage's own, the cascade's) and the metrics, from
    ``scored`` = (fast scores, cascade scores, truth, where they come from)."""
    fast_scores, scores, truth, source = scored
    own = jailbreak_threshold(fast_scores, truth, max_fpr)
    cut = jailbreak_threshold(scores, truth, max_fpr)
    common = {"source": source, "max_fpr": max_fpr, "extra_rows": model.metrics["extra_rows"]}
    sent = float(((fast_scores >= model.low) & (fast_scores < model.high)).mean())
    metrics = {**model.metrics, **common, **jailbreak_metrics(scores, truth, cut)}
    metrics[source if source == "validation" else "calibration"] = {
        "accurate_share": round(sent, 4),
        "fast_alone_f1": jailbreak_metrics(fast_scores, truth, own)["f1"],
    }
    fast = replace(model.fast, threshold=round(own, 6),
                   metrics={**common, **jailbreak_metrics(fast_scores, truth, own)})  # fmt: skip
    slow = replace(model.accurate, metrics={**common, "c": model.metrics["accurate_c"]})
    return replace(model, fast=fast, accurate=slow, threshold=round(cut, 6), metrics=metrics)
