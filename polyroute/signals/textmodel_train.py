"""Training the ``jailbreak`` and ``domain`` signal models (scikit-learn, at training time only).

Rows are JSON lines ``{"text", "label"}``; ``jailbreak`` labels are ``injection`` or
``benign``; ``domain`` labels are domains or ``out_of_scope``, with an optional finer
``intent`` per row (the model is then a softmax over intents whose probabilities are
summed per domain: tighter classes, and a much better out-of-scope cut).

Thresholds, when no validation file is given, come from 5-fold out-of-fold scores:

- ``jailbreak``: the lowest threshold keeping the false-positive rate on benign
  rows at most ``max_fpr`` (3 %), i.e. the most recall under that bound;
- ``domain``: the cut on the confidence (the best domain probability, mixed with the
  cosine to the nearest class centroid, see ``polyroute.signals.textmodel``) maximising
  in-scope accuracy + out-of-scope recall; or, given ``min_oos_recall``, the lowest cut
  (the most in-scope accuracy) whose out-of-scope recall reaches it.  The centroid
  weight is the one of ``CENTROID_WEIGHTS`` whose cut does best on that same objective,
  on the same out-of-fold scores.  It needs ``out_of_scope`` rows; without them the
  threshold is 0 (nothing is out of scope) and no centroids are kept.

With a validation file, the jailbreak threshold is calibrated on it (the domain
threshold stays cross-validated) and the reported metrics are the validation's.

A row may carry a ``weight`` (a number from 1e-4 to 1e4, default 1): its sample weight
in the fit of a single ``jailbreak`` model, the fine-tuned one's loss included (say
terse ordinary prompts at 0.25, so that they teach "short is not an attack" without
outweighing the data's short attacks).  Weights shape the fit only: a threshold and its
metrics count each scored row once.  Every other trainer, and every validation set,
refuses weighted rows (:func:`refuse_weights`) rather than ignore them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from polyroute.embed import Array, make_encoder
from polyroute.errors import ConfigError
from polyroute.jsonio import json_lines
from polyroute.signals.textmodel import OUT_OF_SCOPE, ModelType, TextModel

JAILBREAK_LABELS = ("benign", "injection")
FOLDS = 5
CENTROID_WEIGHTS = (0.0, 0.25, 0.5, 0.75, 1.0)
MIN_WEIGHT, MAX_WEIGHT = 1e-4, 1e4  # a row's sample weight
SPARSE_FROM = 4096  # feature width above which LR is fitted on a sparse copy
BoolArray = npt.NDArray[np.bool_]


@dataclass(frozen=True)
class Rows:
    texts: list[str]
    labels: list[str]
    intents: list[str] | None
    #: optional ``group`` of each row (say the template a look-alike came from): a jailbreak
    #: cascade holds each group out of one cross-validation fold whole
    groups: list[str] | None = None
    #: optional sample ``weight`` of each row (None: every row weighs 1)
    weights: list[float] | None = None

    def sample_weights(self) -> npt.NDArray[np.float64]:
        """Each row's weight (1 where none is given)."""
        if self.weights is None:
            return np.ones(len(self.texts), dtype=np.float64)
        return np.asarray(self.weights, dtype=np.float64)


def refuse_weights(where: str, *rows: Rows | None) -> None:
    """A trainer that reads no row weights refuses weighted rows: an error, never a drop."""
    if any(r is not None and r.weights is not None for r in rows):
        raise ConfigError(f"{where}: row 'weight' is read only when training a single "
                          "jailbreak model, and never on validation rows")  # fmt: skip


def read_rows(path: str | Path, kind: ModelType) -> Rows:
    """The rows of a JSONL file; a bad row is an error naming the file and line."""
    file = Path(path)
    texts, labels, intents, groups, weights = [], [], [], [], []
    for number, row in json_lines(file):
        where = f"{file}:{number}"
        text, label, intent = row.get("text"), row.get("label"), row.get("intent")
        group = row.get("group")
        groups.append(group if isinstance(group, str) and group else "")
        weights.append(_weight(row.get("weight", 1.0), where))
        if not isinstance(text, str) or not isinstance(label, str) or not label:
            raise ConfigError(f"{where}: expected string 'text' and non-empty string 'label'")
        if kind == "jailbreak" and label not in JAILBREAK_LABELS:
            raise ConfigError(f"{where}: label {label!r}, expected 'injection' or 'benign'")
        texts.append(text)
        labels.append(label)
        intents.append(intent if isinstance(intent, str) and intent else label)
    if not texts:
        raise ConfigError(f"{file}: no training rows")
    has_intents = any(i != lab for i, lab in zip(intents, labels, strict=True))
    weighted = any(w != 1.0 for w in weights)
    return Rows(texts, labels, intents if has_intents else None,
                groups if any(groups) else None, weights if weighted else None)  # fmt: skip


def _weight(value: Any, where: str) -> float:
    """A row's ``weight``: a number from MIN_WEIGHT to MAX_WEIGHT (default 1)."""
    number = None
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            number = float(value)
        except OverflowError:  # an integer too large for a float
            number = None
    if number is None or not (math.isfinite(number) and MIN_WEIGHT <= number <= MAX_WEIGHT):
        raise ConfigError(f"{where}: 'weight' must be a number from {MIN_WEIGHT:g} to "
                          f"{MAX_WEIGHT:g}")  # fmt: skip
    return number


def _check_classes(rows: Rows, kind: ModelType, where: str) -> None:
    found = set(rows.labels)
    if kind == "jailbreak" and found != set(JAILBREAK_LABELS):
        raise ConfigError(f"{where}: jailbreak training needs both 'injection' and 'benign' rows")
    if kind == "domain" and len(found - {OUT_OF_SCOPE}) < 2:
        raise ConfigError(f"{where}: domain training needs at least two in-scope labels")
    if rows.intents is not None:
        owner: dict[str, str] = {}
        for intent, label in zip(rows.intents, rows.labels, strict=True):
            if owner.setdefault(intent, label) != label:
                raise ConfigError(f"{where}: intent {intent!r} has two labels")


def _fit(
    x: Array, y: Sequence[str], c: float, weight: npt.NDArray[np.float64] | None = None
) -> tuple[list[str], Array, Array]:
    from scipy.sparse import csr_matrix
    from sklearn.linear_model import LogisticRegression

    # wide hashed n-gram rows are mostly zeros: a sparse matrix fits the same model faster
    data = csr_matrix(x) if x.shape[1] > SPARSE_FROM else x
    lr = LogisticRegression(C=c, max_iter=3000).fit(data, np.asarray(y), sample_weight=weight)
    classes = [str(k) for k in lr.classes_]
    coef = np.asarray(lr.coef_, dtype=np.float32)
    intercept = np.asarray(lr.intercept_, dtype=np.float32)
    return classes, coef, intercept


def _folds(y: Sequence[str]) -> list[tuple[Any, Any]]:
    from sklearn.model_selection import StratifiedKFold

    labels = np.asarray(y)
    counts = min(int((labels == k).sum()) for k in set(y))
    splitter = StratifiedKFold(n_splits=max(2, min(FOLDS, counts)), shuffle=True, random_state=0)
    return list(splitter.split(np.zeros(len(labels)), labels))


def _model(kind: ModelType, enc: str, fit: tuple[list[str], Array, Array], groups: list[str],
           threshold: float = 0.5) -> TextModel:  # fmt: skip
    classes, coef, intercept = fit
    return TextModel(kind, enc, tuple(classes), tuple(groups), coef, intercept, threshold)


def jailbreak_threshold(scores: Array, positive: BoolArray, max_fpr: float) -> float:
    """The lowest threshold with a false-positive rate at most ``max_fpr`` on the negatives."""
    benign = np.sort(scores[~positive])[::-1]
    allowed = int(np.floor(max_fpr * len(benign)))
    if allowed >= len(benign):
        return 0.0
    return float(np.nextafter(benign[allowed], np.float32(2.0)))


def jailbreak_metrics(scores: Array, positive: BoolArray, threshold: float) -> dict[str, float]:
    pred = scores >= threshold
    tp = int((pred & positive).sum())
    fp = int((pred & ~positive).sum())
    fn = int((~pred & positive).sum())
    precision = tp / max(tp + fp, 1)
    recall = tp / max(tp + fn, 1)
    f1 = 2 * precision * recall / max(precision + recall, 1e-12)
    fpr = fp / max(int((~positive).sum()), 1)
    return {k: round(v, 4) for k, v in
            {"precision": precision, "recall": recall, "f1": f1, "fpr": fpr}.items()}  # fmt: skip


def train_jailbreak(
    rows: Rows,
    *,
    encoder: str = "static",
    validation: Rows | None = None,
    c: float = 4.0,
    max_fpr: float = 0.03,
    extra: Sequence[Rows] = (),
    where: str = "training data",
) -> TextModel:
    """``extra`` rows join every fit (each cross-validation fold's too) but are never
    scored: the threshold and metrics come from ``rows`` (or ``validation``) alone."""
    _check_classes(rows, "jailbreak", where)
    refuse_weights("--validation", validation)
    enc = make_encoder(encoder)
    more = [t for r in extra for t in r.texts]
    x = enc.fit(rows.texts + more).encode(rows.texts)
    y = ["injection" if lab == "injection" else "benign" for lab in rows.labels]
    xe = enc.encode(more) if more else x[:0]
    ye = ["injection" if lab == "injection" else "benign" for r in extra for lab in r.labels]
    w = rows.sample_weights()
    we = np.concatenate([r.sample_weights() for r in extra] or [w[:0]])
    positive = np.asarray(y) == "injection"
    if validation is not None:
        fitted = jailbreak_fit(np.vstack([x, xe]), y + ye, c, encoder, fit_weights(w, we))
        scores = fitted.scores(enc.encode(validation.texts))
        truth = np.asarray(validation.labels) == "injection"
        source = "validation"
    else:
        scores = np.zeros(len(y), dtype=np.float32)
        folds = _folds(y)
        for train, test in folds:
            fold = jailbreak_fit(np.vstack([x[train], xe]), [y[i] for i in train] + ye, c,
                                 encoder, fit_weights(w[train], we))  # fmt: skip
            scores[test] = fold.scores(x[test])
        truth, source = positive, f"{len(folds)}-fold cross-validation"
        fitted = jailbreak_fit(np.vstack([x, xe]), y + ye, c, encoder, fit_weights(w, we))
    threshold = jailbreak_threshold(scores, truth, max_fpr)
    metrics = {"source": source, "max_fpr": max_fpr, "extra_rows": len(ye),
               **jailbreak_metrics(scores, truth, threshold)}  # fmt: skip
    return replace(fitted, threshold=round(threshold, 6), metrics=metrics)


def fit_weights(*weights: npt.NDArray[np.float64]) -> npt.NDArray[np.float64] | None:
    """The rows' sample weights in fit order, or None when every one is 1 (the fit is then
    exactly the unweighted one)."""
    joined: npt.NDArray[np.float64] = np.concatenate(weights)
    return None if bool((joined == 1.0).all()) else joined


def jailbreak_fit(
    x: Array,
    y: Sequence[str],
    c: float,
    encoder: str,
    weight: npt.NDArray[np.float64] | None = None,
) -> TextModel:
    classes, coef, intercept = _fit(x, y, c, weight)
    # binary LR: one row, for classes[1]; the classes sort as ("benign", "injection")
    assert classes == list(JAILBREAK_LABELS), classes
    return _model("jailbreak", encoder, (["injection"], coef, intercept), ["injection"])


def domain_metrics(predicted: Sequence[str], truth: Sequence[str]) -> dict[str, float]:
    pred, true = np.asarray(predicted), np.asarray(truth)
    scope = true != OUT_OF_SCOPE
    accuracy = float((pred[scope] == true[scope]).mean()) if scope.any() else 0.0
    recall = float((pred[~scope] == OUT_OF_SCOPE).mean()) if (~scope).any() else 0.0
    return {"in_scope_accuracy": round(accuracy, 4), "oos_recall": round(recall, 4)}


def _domain_threshold(
    names: list[str], top: Array, truth: list[str], min_oos_recall: float | None
) -> tuple[float, float]:
    """The out-of-scope cut and its objective: the lowest cut (most in-scope accuracy)
    whose out-of-fold out-of-scope recall reaches ``min_oos_recall`` (objective: that
    accuracy; -1 if none does); with None, the cut maximising in-scope accuracy +
    out-of-scope recall (objective: that sum)."""
    true = np.asarray(truth)
    oos = true == OUT_OF_SCOPE
    if not oos.any():
        return 0.0, 0.0
    right = (np.asarray(names) == true)[~oos]
    cuts = np.unique(np.round(top, 3))
    # rows at or above a cut stay in scope: count them per cut by sorted search
    out, kept_right = np.sort(top[oos]), np.sort(top[~oos][right])
    accuracy = (len(kept_right) - np.searchsorted(kept_right, cuts, "left")) / int((~oos).sum())
    recall = np.searchsorted(out, cuts, "left") / len(out)
    if min_oos_recall is not None:
        ok = np.flatnonzero(np.round(recall, 4) >= min_oos_recall)
        if not len(ok):
            return float(np.max(top)), -1.0
        return float(cuts[ok[0]]), float(accuracy[ok[0]])
    score = np.round(accuracy, 4) + np.round(recall, 4)
    best = int(np.argmax(score))
    return float(cuts[best]), float(score[best])


def _centroids(x: Array, y: Sequence[str], classes: list[str]) -> Array:
    """Each class's mean vector, unit length (rows in ``classes`` order)."""
    labels = np.asarray(y)
    means = np.stack([x[labels == k].mean(axis=0) for k in classes])
    norms = np.linalg.norm(means, axis=1, keepdims=True)
    out: Array = (means / np.maximum(norms, 1e-12)).astype(np.float32)
    return out


def _domain_fit(
    x: Array, y: Sequence[str], c: float, encoder: str, group_of: dict[str, str]
) -> TextModel:
    classes, coef, intercept = _fit(x, y, c)
    groups = [group_of[k] for k in classes]
    model = _model("domain", encoder, (classes, coef, intercept), groups)
    return replace(model, centroids=_centroids(x, y, classes))


@dataclass(frozen=True)
class OutOfFold:
    """A domain model's out-of-fold view of its training rows: the best in-scope label,
    its confidence, and the label after the chosen cut."""

    names: list[str]
    top: Array
    labels: list[str]


def _choose_weight(
    folds: list[tuple[TextModel, Any]], x: Array, truth: list[str], min_oos_recall: float | None
) -> tuple[float, float, OutOfFold]:
    """The centroid weight and cut doing best on the out-of-fold scores (ties: the smaller
    weight), and the out-of-fold view they give."""
    empty = OutOfFold([], np.zeros(0, dtype=np.float32), [])
    best: tuple[float, float, float, OutOfFold] = (-2.0, 0.0, 0.0, empty)
    for weight in CENTROID_WEIGHTS:
        names: list[str] = [""] * len(truth)
        top = np.zeros(len(truth), dtype=np.float32)
        for fold, test in folds:
            mixed = replace(fold, centroid_weight=weight)
            got, score = mixed.domain_scores(x[test])
            for i, name, value in zip(test, got, score, strict=True):
                names[i], top[i] = name, value
        cut, objective = _domain_threshold(names, top, truth, min_oos_recall)
        if objective > best[0]:
            cv = [n if s >= cut else OUT_OF_SCOPE for n, s in zip(names, top, strict=True)]
            best = (objective, weight, cut, OutOfFold(names, top, cv))
    return best[1], best[2], best[3]


def train_domain(
    rows: Rows,
    *,
    encoder: str = "static",
    validation: Rows | None = None,
    c: float = 10.0,
    min_oos_recall: float | None = None,
    extra: Sequence[Rows] = (),
    where: str = "training data",
) -> TextModel:
    model, _ = train_domain_oof(rows, encoder=encoder, validation=validation, c=c,
                                min_oos_recall=min_oos_recall, extra=extra,
                                where=where)  # fmt: skip
    return model


def _domain_extra(
    enc: Any, extra: Sequence[Rows], group_of: dict[str, str], where: str
) -> tuple[Array, list[str]]:
    """The extra rows' vectors and classes (each row's intent, else its label); a class
    the training rows know must keep its label there.  ``group_of`` gains new classes."""
    texts = [t for r in extra for t in r.texts]
    classes: list[str] = []
    for r in extra:
        for cls, label in zip(r.intents or r.labels, r.labels, strict=True):
            if group_of.setdefault(cls, label) != label:
                raise ConfigError(
                    f"{where}: an extra row's intent {cls!r} has label {label!r}, "
                    f"the training rows give it {group_of[cls]!r}"
                )
            classes.append(cls)
    return enc.encode(texts) if texts else np.zeros((0, 0), dtype=np.float32), classes


def train_domain_oof(
    rows: Rows,
    *,
    encoder: str = "static",
    validation: Rows | None = None,
    c: float = 10.0,
    min_oos_recall: float | None = None,
    extra: Sequence[Rows] = (),
    where: str = "training data",
) -> tuple[TextModel, OutOfFold]:
    """``train_domain``, and the out-of-fold view of the training rows behind its choices.

    ``extra`` rows (say unrelated prompts labelled ``out_of_scope``) join every fit, each
    cross-validation fold's too, but are never scored: the centroid weight, the cut and
    the metrics come from ``rows`` (and ``validation``) alone."""
    _check_classes(rows, "domain", where)
    refuse_weights(where, rows, validation, *extra)
    enc = make_encoder(encoder)
    x = enc.fit(rows.texts).encode(rows.texts)
    y = list(rows.intents or rows.labels)
    group_of = dict(zip(y, rows.labels, strict=True))
    xe, ye = _domain_extra(enc, extra, group_of, where)

    def with_extra(idx: Any) -> tuple[Array, list[str]]:
        return (np.vstack([x[idx], xe]) if ye else x[idx]), [y[i] for i in idx] + ye

    folds = [(_domain_fit(*with_extra(tr), c, encoder, group_of), te) for tr, te in _folds(y)]
    weight, threshold, oof = _choose_weight(folds, x, rows.labels, min_oos_recall)
    full = _domain_fit(*with_extra(np.arange(len(y))), c, encoder, group_of)
    kept = full.centroids if weight > 0 else None
    model = replace(full, threshold=round(threshold, 6), centroids=kept, centroid_weight=weight)
    metrics: dict[str, Any] = {
        "min_oos_recall": min_oos_recall,
        "extra_rows": len(ye),
        "centroid_weight": weight,
        "cross_validation": domain_metrics(oof.labels, rows.labels),
    }
    if validation is not None:
        pred = model.predict_labels(enc.encode(validation.texts))
        metrics["validation"] = domain_metrics(pred, validation.labels)
    return replace(model, metrics=metrics), oof
