"""Small linear text classifiers behind the ``jailbreak`` and ``domain`` signals.

A model is a text encoder id (``static`` or ``minilm``, see ``polyroute.embed``) and
a linear layer over its unit vectors, saved as a directory of two files (never pickle)::

    manifest.json  {"format": "polyroute.signal", "format_version": 1,
                    "type": "jailbreak" | "domain", "encoder": "static",
                    "classes": [...], "groups": [...], "labels": [...],
                    "threshold": 0.5, "metrics": {...}, "versions": {...}}
    arrays.npz     coef [k x dim] float32, intercept [k] float32,
                   optional centroids [k x dim] float32 (domain)

``jailbreak``: one row (``classes == ["injection"]``); the score is its sigmoid.
``domain``: a softmax over ``classes`` (domains, or finer intents); each class
votes for the label ``groups[i]`` and the label with the largest summed probability
wins, unless its confidence is below ``threshold`` (then ``out_of_scope``); a
class whose group is ``out_of_scope`` takes probability mass but never wins.  The
confidence is that summed probability or, with ``centroids`` (each class's mean unit
vector) and ``centroid_weight`` w in the manifest, ``(1 - w) * probability + w *`` the
best cosine between the prompt and a centroid of the winning label: a prompt far from
every training request is out of scope even when the softmax is sure of itself.

The shipped defaults live in ``polyroute/data/signals/<type>/`` (see ``SOURCE.md``
there).  A model that does not load or does not fit its manifest is a ConfigError
naming the file.  The encoder's vectors are not stored: the ``static`` table comes
from the embedding cache (distilled from MiniLM once), as for every static user.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from polyroute.errors import ConfigError

FORMAT = "polyroute.signal"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
ARRAYS = "arrays.npz"
OUT_OF_SCOPE = "out_of_scope"
ModelType = Literal["jailbreak", "domain"]
MODEL_TYPES: tuple[ModelType, ...] = ("jailbreak", "domain")
SIGNAL_ENCODERS = ("static", "minilm", "ngram", "finetuned")
Array = npt.NDArray[np.float32]


@dataclass(frozen=True)
class TextModel:
    """A fitted linear classifier over one encoder's vectors (see the module docstring)."""

    type: ModelType
    encoder: str
    classes: tuple[str, ...]
    groups: tuple[str, ...]
    coef: Array
    intercept: Array
    threshold: float
    metrics: dict[str, Any] = field(default_factory=dict)
    centroids: Array | None = None
    centroid_weight: float = 0.0
    #: the directory it was loaded from (an ``encoder: finetuned`` model's graph lies there)
    source: Path | None = None

    @property
    def labels(self) -> list[str]:
        """The values the signal can take (domain) or the positive class (jailbreak)."""
        seen = dict.fromkeys(g for g in self.groups if g != OUT_OF_SCOPE)
        return [*seen, OUT_OF_SCOPE] if self.type == "domain" else list(seen)

    def scores(self, x: Array) -> Array:
        """Jailbreak: ``[n]`` probabilities; domain: ``[n x k]`` class probabilities."""
        z = x @ self.coef.T + self.intercept
        if self.type == "jailbreak":
            out: Array = (1.0 / (1.0 + np.exp(-np.clip(z[:, 0], -60.0, 60.0)))).astype(np.float32)
            return out
        z = z - z.max(axis=1, keepdims=True)
        e = np.exp(z)
        probs: Array = (e / e.sum(axis=1, keepdims=True)).astype(np.float32)
        return probs

    def domain_scores(self, x: Array) -> tuple[list[str], Array]:
        """For each row: the best in-scope label and its confidence (see the module docstring)."""
        probs = self.scores(x)
        names, member = _grouping(self.groups)
        summed = probs @ member
        best = summed.argmax(axis=1)
        rows = np.arange(len(best))
        confidence: Array = summed[rows, best]
        if self.centroids is not None and self.centroid_weight > 0.0:
            cosine = x @ self.centroids.T
            # the best cosine to a centroid of each row's winning label
            near = np.where(member[:, best].T > 0, cosine, -np.inf).max(axis=1)
            w = np.float32(self.centroid_weight)
            confidence = ((1 - w) * confidence + w * near).astype(np.float32)
        return [names[i] for i in best], confidence

    def predict_labels(self, x: Array, threshold: float | None = None) -> list[str]:
        """Domain labels, ``out_of_scope`` below ``threshold`` (default: the model's)."""
        cut = self.threshold if threshold is None else threshold
        names, top = self.domain_scores(x)
        return [n if float(s) >= cut else OUT_OF_SCOPE for n, s in zip(names, top, strict=True)]


@lru_cache(maxsize=64)
def _grouping(groups: tuple[str, ...]) -> tuple[list[str], Array]:
    """The in-scope labels of a model's class ``groups`` and the ``[classes x labels]``
    0/1 membership matrix (built once per model, not per request; never mutated)."""
    names = [g for g in dict.fromkeys(groups) if g != OUT_OF_SCOPE]
    member = np.array([[g == n for n in names] for g in groups], dtype=np.float32)
    return names, member


def default_model_dir(kind: ModelType) -> Path:
    """The shipped default model of ``kind`` (inside the installed package)."""
    return Path(str(resources.files("polyroute") / "data" / "signals" / kind))


def save_model(model: TextModel, out: str | Path, info: dict[str, Any] | None = None) -> Path:
    """Write ``model`` to the directory ``out`` (created); returns its path."""
    from polyroute.routers._artifact_files import write_model_dir

    manifest = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "type": model.type,
        "encoder": model.encoder,
        "classes": list(model.classes),
        "groups": list(model.groups),
        "labels": model.labels,
        "threshold": model.threshold,
        "metrics": model.metrics,
        **(info or {}),
    }
    arrays = {"coef": model.coef, "intercept": model.intercept}
    if model.centroids is not None:
        arrays["centroids"] = model.centroids
        manifest["centroid_weight"] = model.centroid_weight
    return write_model_dir(out, manifest, arrays, (MANIFEST, ARRAYS))


def load_model(path: str | Path, kind: ModelType | None = None) -> TextModel:
    """The model saved at ``path``; any problem is a ConfigError naming the file."""
    from polyroute.routers._artifact_files import read_json, read_npz

    root = Path(path)
    file = root / MANIFEST
    if not root.is_dir():
        raise ConfigError(f"{root}: not a signal model directory (expected {MANIFEST}, {ARRAYS})")
    manifest = read_json(file)
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ConfigError(f"{file}: not a polyroute signal model (format {FORMAT!r} expected)")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise ConfigError(f"{file}: format_version {manifest.get('format_version')!r} unsupported")
    model_type = manifest.get("type")
    if model_type not in MODEL_TYPES or (kind is not None and model_type != kind):
        raise ConfigError(f"{file}: type {model_type!r}, expected {kind or MODEL_TYPES!r}")
    encoder = manifest.get("encoder")
    if encoder not in SIGNAL_ENCODERS:
        raise ConfigError(f"{file}: encoder {encoder!r}, expected one of {SIGNAL_ENCODERS}")
    classes, groups = manifest.get("classes"), manifest.get("groups")
    threshold = manifest.get("threshold")
    if not isinstance(classes, list) or not isinstance(groups, list):
        raise ConfigError(f"{file}: 'classes' and 'groups' must be lists of strings")
    if not _strings(classes) or not _strings(groups) or len(classes) != len(groups):
        raise ConfigError(f"{file}: 'classes' and 'groups' must be equal-length string lists")
    if isinstance(threshold, bool) or not isinstance(threshold, int | float):
        raise ConfigError(f"{file}: 'threshold' must be a number, got {threshold!r}")
    arrays = read_npz(root / ARRAYS)
    coef, intercept = arrays.get("coef"), arrays.get("intercept")
    if coef is None or intercept is None or coef.ndim != 2 or intercept.shape != (len(coef),):
        raise ConfigError(f"{root / ARRAYS}: expected 'coef' [k x dim] and 'intercept' [k]")
    if len(coef) != len(classes) or not np.isfinite(coef).all():
        raise ConfigError(f"{root / ARRAYS}: 'coef' does not fit the {len(classes)} classes")
    centroids, weight = _centroids(arrays, manifest, coef.shape, root)
    if encoder == "finetuned":  # its graph is part of the model: checked now, not per request
        from polyroute.signals.finetuned import finetuned_encoder

        finetuned_encoder(root)
    metrics = manifest.get("metrics")
    return TextModel(
        type=model_type,
        encoder=encoder,
        classes=tuple(classes),
        groups=tuple(groups),
        coef=np.ascontiguousarray(coef, dtype=np.float32),
        intercept=np.asarray(intercept, dtype=np.float32),
        threshold=float(threshold),
        metrics=metrics if isinstance(metrics, dict) else {},
        centroids=centroids,
        centroid_weight=weight,
        source=root,
    )


def _centroids(
    arrays: dict[str, Any], manifest: dict[str, Any], shape: tuple[int, ...], root: Path
) -> tuple[Array | None, float]:
    """The optional class centroids and their weight, checked against ``coef``'s shape."""
    centroids, weight = arrays.get("centroids"), manifest.get("centroid_weight", 0.0)
    if centroids is None:
        return None, 0.0
    if centroids.shape != shape or not np.isfinite(centroids).all():
        raise ConfigError(f"{root / ARRAYS}: 'centroids' must be finite and shaped like 'coef'")
    if isinstance(weight, bool) or not isinstance(weight, int | float) or not 0 <= weight <= 1:
        raise ConfigError(f"{root / MANIFEST}: 'centroid_weight' must be a number in [0, 1]")
    return np.ascontiguousarray(centroids, dtype=np.float32), float(weight)


def _strings(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, str) for v in value)
