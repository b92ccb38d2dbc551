"""Training the ``jailbreak`` and ``domain`` signal models (scikit-learn, at training time only).

Rows are JSON lines ``{"text", "label"}``; ``jailbreak`` labels are ``injection`` or
``benign``; ``domain`` labels are domains or ``out_of_scope``, with an optional finer
``intent`` per row (the model is then a softmax over intents whose probabilities are
summed per domain: tighter classes, and a much better out-of-scope cut).

Thresholds, when no validation file is given, come from 5-fold out-of-fold scores:

- ``jailbreak``: the lowest threshold keeping the false-positive rate on benign
  rows at most ``max_fpr`` (3 %), i.e. the most recall under that bound;
- ``domain``: the cut on the best domain probability maximising in-scope accuracy +
  out-of-scope recall; or, given ``min_oos_recall``, the lowest cut (the most in-scope
  accuracy) whose out-of-scope recall reaches it.  It needs ``out_of_scope`` rows;
  without them the threshold is 0 (nothing is out of scope).

With a validation file, the jailbreak threshold is calibrated on it (the domain
threshold stays cross-validated) and the reported metrics are the validation's.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
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
BoolArray = npt.NDArray[np.bool_]


@dataclass(frozen=True)
class Rows:
    texts: list[str]
    labels: list[str]
    intents: list[str] | None


def read_rows(path: str | Path, kind: ModelType) -> Rows:
    """The rows of a JSONL file; a bad row is an error naming the file and line."""
    file = Path(path)
    texts, labels, intents = [], [], []
    for number, row in json_lines(file):
        where = f"{file}:{number}"
        text, label, intent = row.get("text"), row.get("label"), row.get("intent")
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
    return Rows(texts, labels, intents if has_intents else None)


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


def _fit(x: Array, y: Sequence[str], c: float) -> tuple[list[str], Array, Array]:
    from sklearn.linear_model import LogisticRegression

    lr = LogisticRegression(C=c, max_iter=3000).fit(x, np.asarray(y))
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
    where: str = "training data",
) -> TextModel:
    _check_classes(rows, "jailbreak", where)
    enc = make_encoder(encoder)
    x = enc.fit(rows.texts).encode(rows.texts)
    y = ["injection" if lab == "injection" else "benign" for lab in rows.labels]
    positive = np.asarray(y) == "injection"
    if validation is not None:
        scores = _jailbreak_fit(x, y, c, encoder).scores(enc.encode(validation.texts))
        truth = np.asarray(validation.labels) == "injection"
        source = "validation"
    else:
        scores = np.zeros(len(y), dtype=np.float32)
        folds = _folds(y)
        for train, test in folds:
            fold = _jailbreak_fit(x[train], [y[i] for i in train], c, encoder)
            scores[test] = fold.scores(x[test])
        truth, source = positive, f"{len(folds)}-fold cross-validation"
    threshold = jailbreak_threshold(scores, truth, max_fpr)
    model = _jailbreak_fit(x, y, c, encoder)
    metrics = {"source": source, "max_fpr": max_fpr, **jailbreak_metrics(scores, truth, threshold)}
    return TextModel(**{**model.__dict__, "threshold": round(threshold, 6), "metrics": metrics})


def _jailbreak_fit(x: Array, y: Sequence[str], c: float, encoder: str) -> TextModel:
    classes, coef, intercept = _fit(x, y, c)
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
) -> float:
    """The out-of-scope cut: the lowest (most in-scope accuracy) whose out-of-fold
    out-of-scope recall reaches ``min_oos_recall``; with None, the cut maximising
    in-scope accuracy + out-of-scope recall."""
    if not (np.asarray(truth) == OUT_OF_SCOPE).any():
        return 0.0
    best, cut = -1.0, 0.0
    for candidate in np.unique(np.round(top, 3)):
        pred = [n if s >= candidate else OUT_OF_SCOPE for n, s in zip(names, top, strict=True)]
        m = domain_metrics(pred, truth)
        if min_oos_recall is not None:
            if m["oos_recall"] >= min_oos_recall:
                return float(candidate)
            continue
        score = m["in_scope_accuracy"] + m["oos_recall"]
        if score > best:
            best, cut = score, float(candidate)
    return cut if min_oos_recall is None else float(np.max(top))


def train_domain(
    rows: Rows,
    *,
    encoder: str = "static",
    validation: Rows | None = None,
    c: float = 10.0,
    min_oos_recall: float | None = None,
    where: str = "training data",
) -> TextModel:
    _check_classes(rows, "domain", where)
    enc = make_encoder(encoder)
    x = enc.fit(rows.texts).encode(rows.texts)
    y = rows.intents or rows.labels
    group_of = dict(zip(y, rows.labels, strict=True))
    names: list[str] = [""] * len(y)
    top = np.zeros(len(y), dtype=np.float32)
    for train, test in _folds(y):
        fit = _fit(x[train], [y[i] for i in train], c)
        fold = _model("domain", encoder, fit, [group_of[k] for k in fit[0]])
        got, best = fold.domain_scores(x[test])
        for i, name, score in zip(test, got, best, strict=True):
            names[i], top[i] = name, score
    threshold = _domain_threshold(names, top, rows.labels, min_oos_recall)
    fit = _fit(x, y, c)
    model = _model("domain", encoder, fit, [group_of[k] for k in fit[0]], round(threshold, 6))
    cv = [n if s >= threshold else OUT_OF_SCOPE for n, s in zip(names, top, strict=True)]
    metrics: dict[str, Any] = {
        "min_oos_recall": min_oos_recall,
        "cross_validation": domain_metrics(cv, rows.labels),
    }
    if validation is not None:
        pred = model.predict_labels(enc.encode(validation.texts))
        metrics["validation"] = domain_metrics(pred, validation.labels)
    return TextModel(**{**model.__dict__, "metrics": metrics})
