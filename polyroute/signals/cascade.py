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
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from polyroute.errors import ConfigError
from polyroute.signals.textmodel import (
    FORMAT,
    FORMAT_VERSION,
    MANIFEST,
    OUT_OF_SCOPE,
    Array,
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
    from polyroute.routers._artifact_files import versions

    path = Path(out)
    path.mkdir(parents=True, exist_ok=True)
    save_model(model.fast, path / "fast", info)
    save_model(model.accurate, path / "accurate", info)
    manifest = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "type": "domain",
        "encoder": CASCADE,
        "stages": {s: s for s in STAGES},
        "band": [model.low, model.high],
        "accurate_max_words": model.max_words,
        "labels": model.labels,
        "encoders": {"fast": model.fast.encoder, "accurate": model.accurate.encoder},
        "metrics": model.metrics,
        "versions": versions(),
        **(info or {}),
    }
    (path / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return path


def load_cascade(path: str | Path) -> Cascade:
    """The cascade saved at ``path``; any problem is a ConfigError naming the file."""
    from polyroute.routers._artifact_files import read_json

    root = Path(path)
    file = root / MANIFEST
    manifest = read_json(file)
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ConfigError(f"{file}: not a polyroute signal model (format {FORMAT!r} expected)")
    if manifest.get("format_version") != FORMAT_VERSION or manifest.get("type") != "domain":
        raise ConfigError(f"{file}: a cascade must be a format_version 1 'domain' model")
    stages = manifest.get("stages")
    if not isinstance(stages, dict) or set(stages) != set(STAGES):
        raise ConfigError(f"{file}: 'stages' must name the 'fast' and 'accurate' directories")
    found: dict[str, TextModel] = {}
    for name in STAGES:
        sub = stages[name]
        inside = isinstance(sub, str) and sub and not Path(sub).is_absolute()
        if not inside or ".." in Path(sub).parts:
            raise ConfigError(f"{file}: stages.{name} must be a directory inside the model")
        found[name] = load_model(root / sub, "domain")
    band = manifest.get("band")
    if (
        not isinstance(band, list)
        or len(band) != 2
        or not all(isinstance(b, int | float) and not isinstance(b, bool) for b in band)
        or not 0.0 <= band[0] <= band[1] <= MAX_BAND
    ):
        raise ConfigError(f"{file}: 'band' must be [low, high] with 0 <= low <= high <= 2")
    fast, accurate = found["fast"], found["accurate"]
    if fast.labels != accurate.labels:
        raise ConfigError(f"{file}: the fast and accurate stages have different labels")
    words = manifest.get("accurate_max_words")
    if words is not None and (isinstance(words, bool) or not isinstance(words, int) or words < 1):
        raise ConfigError(f"{file}: 'accurate_max_words' must be a positive integer or null")
    metrics = manifest.get("metrics")
    return Cascade(fast, accurate, float(band[0]), float(band[1]), words,
                   metrics if isinstance(metrics, dict) else {})  # fmt: skip
