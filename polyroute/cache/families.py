"""A trained cache similarity: prompts of one *family* (rewordings of one request) match.

A plain cosine treats every pair of prompts alike; the cache's traffic, though, falls into
request families ("what's my balance", "how much money do I have"), and rewordings of one
family can sit further apart in the encoder's space than two different requests.  A
:class:`Families` model is a multinomial logistic regression over the families of a
labelled set of prompts (rows ``{"text", "group"}``; CLINC150's 150 intents for the
shipped default, ``polyroute/data/cache/families/``).  A prompt's family vector is its
class-probability vector ``z = softmax(x W + b)``, normalised, and two prompts are

- the *same request* by the raw rule when their cosine ``x . x'`` reaches
  ``raw_threshold`` (as without the model), or
- the *same family* when ``mix = weight * z . z' + (1 - weight) * x . x'`` reaches
  ``threshold``.

The index keeps one unit vector per entry, ``[sqrt(weight) z, sqrt(1 - weight) x]``, so
``mix`` is one dot product and ``x . x'`` is the dot product of the last ``dim`` columns
over ``1 - weight``.  The score :meth:`polyroute.cache.Similarity.scores` ranks by is
``max(raw, mix - (threshold - raw_threshold))``: it reaches ``raw_threshold`` exactly when
one of the two rules holds.  The guards (numbers, quoted strings, swaps) still refuse
what they refuse.

It pays off only for families it was trained on: on families it never saw the raw rule
still answers, at about the plain cosine's hit rate.  Measured in
``benchmarks/RESULTS_cache_families.md`` (``benchmarks/bench_cache_families.py``,
``benchmarks/exp_cache_trained.py``).  Arrays load without pickle (``arrays.npz``:
``w`` [dim x k], ``b`` [k]); ``manifest.json`` holds the rule and the provenance.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from functools import cached_property
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from polyroute.errors import ConfigError

FORMAT = "polyroute-cache-families"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
ARRAYS = "arrays.npz"
#: calibrated with the shipped model (RESULTS_cache_families.md): the raw rule, the family weight
#: and the family threshold
RAW_THRESHOLD = 0.88
WEIGHT = 0.9
THRESHOLD = 0.96
F32 = npt.NDArray[np.float32]


@dataclass(frozen=True, eq=False)
class Families:
    """A family model over one encoder's unit vectors and the rule that reads it."""

    encoder: str
    w: F32  #: dim x k
    b: F32  #: k
    raw_threshold: float = RAW_THRESHOLD
    weight: float = WEIGHT
    threshold: float = THRESHOLD
    info: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.w.ndim != 2 or self.b.shape != (self.w.shape[1],) or self.w.shape[1] < 2:
            raise ConfigError(
                f"cache families for {self.encoder!r}: expected w [dim x k] and b [k], k >= 2"
            )
        if not (np.isfinite(self.w).all() and np.isfinite(self.b).all()):
            raise ConfigError(f"cache families for {self.encoder!r}: non-finite weights")
        if not 0.0 < self.weight < 1.0:
            raise ConfigError(
                f"cache families for {self.encoder!r}: expected 0 < weight < 1, got {self.weight}"
            )
        for name in ("raw_threshold", "threshold"):
            if not -1.0 <= getattr(self, name) <= 1.0:
                raise ConfigError(
                    f"cache families for {self.encoder!r}: expected -1 <= {name} <= 1, "
                    f"got {getattr(self, name)}"
                )

    @property
    def dim(self) -> int:
        return int(self.w.shape[0])

    @property
    def k(self) -> int:
        return int(self.w.shape[1])

    @cached_property
    def digest(self) -> str:
        """A short id of the weights and the rule (Redis keys: another model, other keys)."""
        h = hashlib.sha256(self.w.tobytes())
        h.update(self.b.tobytes())
        h.update(repr((self.raw_threshold, self.weight, self.threshold)).encode())
        return h.hexdigest()[:12]

    def stored(self, unit: F32) -> F32:
        """The vector an index keeps for the unit vector ``unit`` (see the module doc)."""
        logits = unit @ self.w + self.b
        z = np.exp(logits - logits.max())
        z /= np.float32(max(float(np.linalg.norm(z)), 1e-12))
        out = np.concatenate([np.sqrt(self.weight) * z, np.sqrt(1.0 - self.weight) * unit])
        return out.astype(np.float32, copy=False)

    def scores(self, matrix: F32, v: F32) -> npt.NDArray[np.float32]:
        """The rule's score of every stored row of ``matrix`` against the stored ``v``."""
        mix = matrix @ v
        raw = (matrix[:, self.k :] @ v[self.k :]) / np.float32(1.0 - self.weight)
        offset = np.float32(self.threshold - self.raw_threshold)
        out: npt.NDArray[np.float32] = np.maximum(raw, mix - offset)
        return out


def train_families(
    x: npt.ArrayLike,
    groups: list[str],
    *,
    encoder: str,
    l2: float = 1e-4,
    steps: int = 300,
    lr: float = 0.05,
) -> Families:
    """Fit the family model on the encoder's vectors ``x`` (rows, made unit) labelled by
    ``groups``.

    Multinomial logistic regression, mean cross-entropy + ``l2 * |w|^2``, ``steps``
    full-batch Adam steps from zero (deterministic; ~15 s for 15k x 384 x 150)."""
    xs = np.asarray(x, dtype=np.float32)
    xs = xs / np.maximum(np.linalg.norm(xs, axis=1, keepdims=True), np.float32(1e-12))
    names, y = np.unique(np.asarray(groups), return_inverse=True)
    if len(names) < 2 or len(xs) != len(y):
        raise ConfigError("train-cache: expected rows of at least two groups")
    n, k = len(xs), len(names)
    onehot = np.zeros((n, k), np.float32)
    onehot[np.arange(n), y] = 1.0
    params = [np.zeros((xs.shape[1], k), np.float32), np.zeros(k, np.float32)]
    m1 = [np.zeros_like(p) for p in params]
    m2 = [np.zeros_like(p) for p in params]
    beta1, beta2, eps = 0.9, 0.999, 1e-8
    for step in range(1, steps + 1):
        logits = xs @ params[0] + params[1]
        prob = np.exp(logits - logits.max(1, keepdims=True))
        prob /= prob.sum(1, keepdims=True)
        delta = (prob - onehot) / np.float32(n)
        grads = [xs.T @ delta + np.float32(2.0 * l2) * params[0], delta.sum(0)]
        for i, g in enumerate(grads):
            m1[i] = beta1 * m1[i] + (1 - beta1) * g
            m2[i] = beta2 * m2[i] + (1 - beta2) * g * g
            mean, var = m1[i] / (1 - beta1**step), m2[i] / (1 - beta2**step)
            params[i] = (params[i] - lr * mean / (np.sqrt(var) + eps)).astype(np.float32)
    info = {"groups": int(k), "rows": int(n), "l2": l2, "steps": steps}
    return Families(encoder, params[0], params[1], info=info)


def default_families_dir() -> Path:
    """The shipped family model (CLINC150's 150 intents, MiniLM)."""
    return Path(str(resources.files("polyroute") / "data" / "cache" / "families"))


def save_families(model: Families, out: str | Path, info: dict[str, Any] | None = None) -> Path:
    """Write ``model`` to the directory ``out`` (created); returns its path."""
    from polyroute.routers._artifact_files import write_model_dir

    manifest = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "encoder": model.encoder,
        "raw_threshold": model.raw_threshold,
        "weight": model.weight,
        "threshold": model.threshold,
        **model.info,
        **(info or {}),
    }
    return write_model_dir(out, manifest, {"w": model.w, "b": model.b}, (MANIFEST, ARRAYS))


def load_families(path: str | Path) -> Families:
    """The family model saved at ``path``; any problem is a ConfigError naming the file."""
    from polyroute.routers._artifact_files import read_json, read_npz

    root = Path(path)
    file = root / MANIFEST
    if not root.is_dir():
        raise ConfigError(f"{root}: not a cache families directory (expected {MANIFEST}, {ARRAYS})")
    manifest = read_json(file)
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ConfigError(f"{file}: not a polyroute cache families model ({FORMAT!r} expected)")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise ConfigError(f"{file}: format_version {manifest.get('format_version')!r} unsupported")
    numbers = {}
    for name in ("raw_threshold", "weight", "threshold"):
        value = manifest.get(name)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{file}: {name!r} must be a number, got {value!r}")
        numbers[name] = float(value)
    encoder = manifest.get("encoder")
    if not isinstance(encoder, str):
        raise ConfigError(f"{file}: 'encoder' must be a string, got {encoder!r}")
    arrays = read_npz(root / ARRAYS)
    w, b = arrays.get("w"), arrays.get("b")
    if w is None or b is None:
        raise ConfigError(f"{root / ARRAYS}: expected arrays 'w' [dim x k] and 'b' [k]")
    try:
        return Families(
            encoder,
            np.ascontiguousarray(w, dtype=np.float32),
            np.asarray(b, dtype=np.float32),
            info={"path": str(root)},
            **numbers,
        )
    except ConfigError as exc:
        raise ConfigError(f"{file}: {exc}") from None
