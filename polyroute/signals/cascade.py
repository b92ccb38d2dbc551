"""A two-stage ``domain`` model: a fast model answers when it is sure, an accurate one otherwise.

Saved as a directory holding the two stages, each an ordinary signal model
(``polyroute.signals.textmodel``), and a manifest binding them::

    manifest.json  {"format": "polyroute.signal", "format_version": 1, "type": "domain",
                    "encoder": "cascade", "stages": {"fast": "fast", "accurate": "accurate"},
                    "band": [low, high], "accurate_max_words": 56 | null,
                    "labels": [...], "metrics": {...}}
    fast/          e.g. the static encoder (~0.2 ms a prompt)
    accurate/      e.g. MiniLM (6-36 ms a prompt)

For a prompt, the fast stage's confidence (see ``TextModel.domain_scores``) decides:
at or above ``high`` its label stands; below ``low`` the prompt is ``out_of_scope``;
in between (the uncertain band) the accurate stage answers, with its own threshold,
unless the prompt has more than ``accurate_max_words`` words (twice the longest
training prompt): far from anything either stage was trained on, and where MiniLM
costs most, the fast stage decides alone with its own threshold.
The band is chosen by cross-validation on the training rows
(``polyroute.signals.cascade_train``).  When the accurate stage cannot run, the fast
stage answers alone with its own threshold.

A stage may also be named ``@NAME``: the model polyroute ships as ``data/signals/NAME``
(so a shipped cascade need not hold a second copy of a 22 MiB graph), checked at load
against the digest its manifest records (``shipped_digests``): a stage retrained since
is a ConfigError, never served with a band chosen for the old one.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

from polyroute.errors import ConfigError
from polyroute.signals.textmodel import (
    FORMAT,
    FORMAT_VERSION,
    MANIFEST,
    OUT_OF_SCOPE,
    Array,
    ModelType,
    TextModel,
    load_model,
    save_model,
)

CASCADE = "cascade"
STAGES = ("fast", "accurate")
MAX_BAND = 2.0  # confidences are at most 1; a high cut above that: the fast stage never decides


@dataclass(frozen=True)
class Cascade:
    """A fast and an accurate domain model and the fast stage's uncertain band."""

    fast: TextModel
    accurate: TextModel
    low: float
    high: float
    #: prompts of more words than this never go to the accurate stage (None: no cap)
    max_words: int | None = None
    metrics: dict[str, Any] = field(default_factory=dict)

    @property
    def labels(self) -> list[str]:
        return self.accurate.labels

    def fast_labels(
        self, x: Array, texts: Sequence[str], threshold: float | None = None
    ) -> list[str | None]:
        """Per prompt (its fast-stage vector and text): the label when the fast stage is
        sure, or decides alone because the prompt is over ``max_words`` (then with its own
        threshold, or ``threshold``); None when the accurate stage should answer."""
        names, top = self.fast.domain_scores(x)
        cut = self.fast.threshold if threshold is None else threshold
        out: list[str | None] = []
        for name, score, text in zip(names, top, texts, strict=True):
            if score >= self.high:
                out.append(name)
            elif score < self.low:
                out.append(OUT_OF_SCOPE)
            elif self.max_words is not None and len(text.split()) > self.max_words:
                out.append(name if score >= cut else OUT_OF_SCOPE)
            else:
                out.append(None)
        return out


def is_cascade(path: str | Path) -> bool:
    """Whether the model directory ``path`` holds a cascade (its manifest says so)."""
    file = Path(path) / MANIFEST
    try:
        manifest = json.loads(file.read_text())
    except (OSError, ValueError):
        return False  # load_model names the problem
    return isinstance(manifest, dict) and manifest.get("encoder") == CASCADE


def save_cascade(model: Cascade, out: str | Path, info: dict[str, Any] | None = None) -> Path:
    """Write ``model`` to the directory ``out`` (created); returns its path."""
    fields = {"band": [model.low, model.high], "labels": model.labels}
    return write_stages(model, out, "domain", fields, info)


class TwoStage(Protocol):
    """What :func:`write_stages` writes of a cascade (``Cascade``, ``JailbreakCascade``)."""

    @property
    def fast(self) -> TextModel: ...
    @property
    def accurate(self) -> TextModel: ...
    @property
    def max_words(self) -> int | None: ...
    @property
    def metrics(self) -> dict[str, Any]: ...


def write_stages(
    model: TwoStage,
    out: str | Path,
    kind: str,
    fields: dict[str, Any],
    info: dict[str, Any] | None = None,
) -> Path:
    """Write a two-stage ``kind`` model: both stages, and a manifest binding them with
    ``fields`` plus the word cap and the metrics (the cascades of every signal share
    this layout; see the module docstring)."""
    from polyroute.routers._artifact_files import versions

    path = Path(out)
    path.mkdir(parents=True, exist_ok=True)
    fast, accurate = model.fast, model.accurate
    save_model(fast, path / "fast", info)
    save_model(accurate, path / "accurate", info)
    manifest = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "type": kind,
        "encoder": CASCADE,
        "stages": {s: s for s in STAGES},
        **fields,
        "accurate_max_words": model.max_words,
        "encoders": {"fast": fast.encoder, "accurate": accurate.encoder},
        "metrics": model.metrics,
        "versions": versions(),
        **(info or {}),
    }
    (path / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return path


def read_stages(path: str | Path, kind: Literal["jailbreak", "domain"]) -> Stages:
    """The two stages of the ``kind`` cascade at ``path`` with its manifest; any problem
    is a ConfigError naming the file."""
    from polyroute.routers._artifact_files import read_json

    root = Path(path)
    file = root / MANIFEST
    manifest = read_json(file)
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ConfigError(f"{file}: not a polyroute signal model (format {FORMAT!r} expected)")
    found_kind = manifest.get("type")
    if manifest.get("format_version") != FORMAT_VERSION or found_kind != kind:
        raise ConfigError(
            f"{file}: type {found_kind!r}, expected a format_version 1 {kind!r} cascade"
        )
    stages = manifest.get("stages")
    if not isinstance(stages, dict) or set(stages) != set(STAGES):
        raise ConfigError(f"{file}: 'stages' must name the 'fast' and 'accurate' directories")
    found = {name: stage_model(file, manifest, name, stages[name], kind) for name in STAGES}
    words = manifest.get("accurate_max_words")
    if words is not None and (isinstance(words, bool) or not isinstance(words, int) or words < 1):
        raise ConfigError(f"{file}: 'accurate_max_words' must be a positive integer or null")
    metrics = manifest.get("metrics")
    return Stages(file, manifest, found["fast"], found["accurate"], words,
                  metrics if isinstance(metrics, dict) else {})  # fmt: skip


def stage_model(
    file: Path, manifest: dict[str, Any], role: str, ref: Any, kind: ModelType,
    *, field: str | None = None,
) -> TextModel:  # fmt: skip
    """The model a cascade's manifest names for ``role``: ``@NAME`` (shipped, checked
    against its digest) or a directory inside the cascade.  Errors name ``field``, the
    manifest's field holding ``ref`` (default ``stages.ROLE``)."""
    where = field or f"stages.{role}"
    if isinstance(ref, str) and ref.startswith(SHIPPED):
        return load_model(_shipped_stage(file, manifest, role, ref, kind, where=where), kind)
    inside = isinstance(ref, str) and ref and not Path(ref).is_absolute()
    if not inside or ".." in Path(ref).parts:
        raise ConfigError(f"{file}: {where} must be a directory inside the model")
    return load_model(file.parent / ref, kind)


#: a stage named ``@NAME`` is the model polyroute ships as ``data/signals/NAME``
SHIPPED = "@"
_SHIPPED_NAME = re.compile(r"[a-z][a-z0-9-]{0,63}")


def shipped_digest(path: Path) -> str:
    """A digest of a model directory's files (names and bytes): what a cascade that
    references a shipped stage checks, so a retrained stage is never served with the
    gate and mix chosen for the old one."""
    digest = hashlib.sha256()
    files = [p for p in path.iterdir() if p.is_file() and not p.name.startswith(".")]
    for item in sorted(files, key=lambda p: p.name):  # by name: the same on every platform
        digest.update(item.name.encode() + b"\0" + item.read_bytes())
    return digest.hexdigest()


def _shipped_stage(
    file: Path, manifest: dict[str, Any], stage: str, ref: str, kind: ModelType, *, where: str
) -> Path:
    """The directory of the shipped model ``ref`` (``@NAME``, in the manifest's field
    ``where``), checked against the digest the cascade's manifest recorded for it."""
    from polyroute.signals.textmodel import default_model_dir

    name = ref[len(SHIPPED) :]
    if not _SHIPPED_NAME.fullmatch(name):
        raise ConfigError(f"{file}: {where}: {ref!r} is not a shipped model's name")
    path = default_model_dir(kind).parent / name
    if not path.is_dir():
        raise ConfigError(f"{file}: {where}: this polyroute ships no model {name!r}")
    digests = manifest.get("shipped_digests")
    expected = digests.get(stage) if isinstance(digests, dict) else None
    if not isinstance(expected, str):
        raise ConfigError(f"{file}: shipped_digests.{stage}: expected the digest of {name!r}")
    if expected != shipped_digest(path):
        raise ConfigError(
            f"{file}: {where}: the shipped model {name!r} is not the one this cascade "
            "was built on (its digest differs); rebuild it with train-signal --stages"
        )
    return path


@dataclass(frozen=True)
class Stages:
    """What :func:`read_stages` found: the manifest (and its file, for errors), the two
    stages, the word cap and the metrics."""

    file: Path
    manifest: dict[str, Any]
    fast: TextModel
    accurate: TextModel
    max_words: int | None
    metrics: dict[str, Any]


def load_cascade(path: str | Path) -> Cascade:
    """The cascade saved at ``path``; any problem is a ConfigError naming the file."""
    found = read_stages(path, "domain")
    file, band = found.file, found.manifest.get("band")
    if (
        not isinstance(band, list)
        or len(band) != 2
        or not all(isinstance(b, int | float) and not isinstance(b, bool) for b in band)
        or not 0.0 <= band[0] <= band[1] <= MAX_BAND
    ):
        raise ConfigError(f"{file}: 'band' must be [low, high] with 0 <= low <= high <= 2")
    if found.fast.labels != found.accurate.labels:
        raise ConfigError(f"{file}: the fast and accurate stages have different labels")
    return Cascade(found.fast, found.accurate, float(band[0]), float(band[1]),
                   found.max_words, found.metrics)  # fmt: skip
