"""Training a two-stage ``domain`` cascade (``polyroute.signals.cascade``).

Both stages are trained as ``train_domain`` trains one model (same rows, same folds,
each its own centroid weight and out-of-scope cut by cross-validation).  The band
``[low, high]`` then comes from the same out-of-fold scores only: of the bands whose
cascade keeps out-of-fold in-scope accuracy within ``tolerance`` (default one point)
and out-of-scope recall within half a point of the accurate stage alone, the one
sending the fewest training rows to the accurate stage (ties: the narrower band).
Prompts of more than twice the longest training prompt's words never reach the
accurate stage (CLINC150: 56 words); the training rows are all shorter, so this cap
does not touch the cross-validated choice.
A smaller tolerance widens the band: more prompts pay for the accurate encoder.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from polyroute.embed import make_encoder
from polyroute.signals.cascade import Cascade
from polyroute.signals.textmodel import OUT_OF_SCOPE
from polyroute.signals.textmodel_train import (
    OutOfFold,
    Rows,
    domain_metrics,
    train_domain_oof,
)

#: how much out-of-fold in-scope accuracy the cascade may give up against the accurate
#: stage alone (its out-of-scope recall may drop by at most half a point)
TOLERANCE = 0.01
RECALL_TOLERANCE = 0.005
GRID = 101  # candidate cuts: quantiles of the fast stage's out-of-fold confidence
WORDS_FACTOR = 2  # the accurate stage reads prompts up to this times the longest training one


def choose_band(
    fast: OutOfFold, accurate: OutOfFold, truth: list[str], tolerance: float = TOLERANCE
) -> tuple[float, float, float]:
    """``(low, high, share sent to the accurate stage)`` (see the module docstring)."""
    true = np.asarray(truth)
    oos = true == OUT_OF_SCOPE
    top = np.asarray(fast.top, dtype=np.float64)
    fast_right = np.asarray(fast.names) == true
    slow_right = np.asarray(accurate.labels) == true
    target_acc = float(slow_right[~oos].mean()) if (~oos).any() else 1.0
    target_rec = float(slow_right[oos].mean()) if oos.any() else 1.0
    cuts = np.unique(np.quantile(top, np.linspace(0.0, 1.0, GRID)))
    cuts = np.concatenate([cuts, [np.nextafter(cuts[-1], np.inf)]])
    best: tuple[float, float, float, float] | None = None  # share, width, low, high
    for i, low in enumerate(cuts):
        below = top < low
        for high in cuts[i:]:
            above = top >= high
            band = ~below & ~above
            # in scope: right when the fast label stands or the accurate one is right
            right = np.where(above, fast_right, np.where(band, slow_right, False))
            # out of scope: right below low, or in the band when the accurate stage says so
            caught = np.where(below, True, np.where(band, slow_right, False))
            acc = float(right[~oos].mean()) if (~oos).any() else 1.0
            rec = float(caught[oos].mean()) if oos.any() else 1.0
            if acc < target_acc - tolerance or rec < target_rec - RECALL_TOLERANCE:
                continue
            key = (float(band.mean()), float(high - low), float(low), float(high))
            if best is None or key < best:
                best = key
    if best is None:  # only the accurate stage everywhere keeps the targets
        return 0.0, 1.0, 1.0
    return round(best[2], 6), round(best[3], 6), best[0]


def cascade_labels(
    model: Cascade, x_fast: Any, x_accurate: Any, texts: Sequence[str]
) -> tuple[list[str], float]:
    """The cascade's labels for prompts encoded by both stages, and the share sent on."""
    first = model.fast_labels(x_fast, texts)
    unsure = [i for i, label in enumerate(first) if label is None]
    out = [label or "" for label in first]
    if unsure:
        for i, label in zip(unsure, model.accurate.predict_labels(x_accurate[unsure]), strict=True):
            out[i] = label
    return out, len(unsure) / max(len(first), 1)


def train_domain_cascade(
    rows: Rows,
    *,
    fast_encoder: str = "static",
    accurate_encoder: str = "minilm",
    validation: Rows | None = None,
    c: float = 10.0,
    min_oos_recall: float | None = None,
    tolerance: float = TOLERANCE,
    max_words: int | None = None,
    extra: Sequence[Rows] = (),
    where: str = "training data",
) -> Cascade:
    """Both stages and the band (see the module docstring); ``max_words`` (default twice
    the longest training prompt, in words; 0: no cap) bounds what the accurate stage reads;
    ``extra`` rows join both stages' fits and are never scored (``train_domain_oof``)."""
    common: dict[str, Any] = {"validation": validation, "c": c, "extra": extra,
                              "min_oos_recall": min_oos_recall, "where": where}  # fmt: skip
    fast, fast_oof = train_domain_oof(rows, encoder=fast_encoder, **common)
    accurate, acc_oof = train_domain_oof(rows, encoder=accurate_encoder, **common)
    low, high, share = choose_band(fast_oof, acc_oof, rows.labels, tolerance)
    words = (
        max_words
        if max_words is not None
        else WORDS_FACTOR * max(len(t.split()) for t in rows.texts)
    )
    model = Cascade(fast, accurate, low, high, words or None)
    oof, _ = cascade_labels_oof(fast_oof, acc_oof, low, high)
    metrics: dict[str, Any] = {
        "min_oos_recall": min_oos_recall,
        "tolerance": tolerance,
        "cross_validation": {**domain_metrics(oof, rows.labels), "accurate_share": round(share, 4)},
    }
    if validation is not None:
        xf = make_encoder(fast_encoder).fit(rows.texts).encode(validation.texts)
        xa = make_encoder(accurate_encoder).fit(rows.texts).encode(validation.texts)
        pred, sent = cascade_labels(model, xf, xa, validation.texts)
        metrics["validation"] = {**domain_metrics(pred, validation.labels),
                                 "accurate_share": round(sent, 4)}  # fmt: skip
    return replace(model, metrics=metrics)


def cascade_labels_oof(
    fast: OutOfFold, accurate: OutOfFold, low: float, high: float
) -> tuple[list[str], float]:
    """The cascade's out-of-fold labels for a band, and the share sent on."""
    out: list[str] = []
    sent = 0
    for name, score, slow in zip(fast.names, fast.top, accurate.labels, strict=True):
        if score >= high:
            out.append(name)
        elif score < low:
            out.append(OUT_OF_SCOPE)
        else:
            out.append(slow)
            sent += 1
    return out, sent / max(len(out), 1)
