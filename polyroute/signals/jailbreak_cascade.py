"""A two-stage ``jailbreak`` model: n-grams answer when sure, MiniLM in the uncertain band.

Saved as a directory holding the two stages, each an ordinary ``jailbreak`` model
(``polyroute.signals.textmodel``), and a manifest binding them::

    manifest.json  {"format": "polyroute.signal", "format_version": 1, "type": "jailbreak",
                    "encoder": "cascade", "stages": {"fast": "fast", "accurate": "accurate"},
                    "band": [low, high], "accurate_weight": w, "accurate_max_words": 182 | null,
                    "threshold": t, "labels": ["injection"], "metrics": {...}}
    fast/          e.g. the ``ngram`` model (~0.5 ms a prompt), with its own threshold
    accurate/      e.g. a MiniLM model (6-36 ms a prompt)

A prompt's score is the fast stage's probability ``p`` unless ``low <= p < high`` (the
uncertain band) and the prompt has at most ``accurate_max_words`` words; there the
accurate stage's probability ``q`` is mixed in, and the score stays inside the band (so
it never overtakes a prompt the fast stage is sure of)::

    low + (high - low) * sigmoid((1 - w) * logit(p) + w * logit(q))

``threshold`` applies to that score.  A cascade may name a second key (``"key": {"stage":
REF, "low": b}``, a third jailbreak model, say the ``static`` one whose vector the domain
and similarity signals compute anyway): an in-band prompt it scores below ``b`` is
cleared without the accurate stage, scored ``low * p`` (under the gate, so never
flagged).  ``train-signal jailbreak --stages ... --key DIR`` chooses both cuts.

A cascade may also name ``accurate_min_words``: a prompt of fewer words (runs of word
characters, so ``ignore.all.previous.instructions`` is four) and fewer than 8 characters a
word never reaches the accurate stage, and the fast stage decides it alone, as below (the
shipped gate: 4, since the graph never saw a benign prompt under four words, and the
n-gram model has; the character bound keeps text without spaces, say Chinese, from
counting as one word).

When the accurate stage cannot run, an in-band ``p`` is mapped piecewise-linearly onto
the band so that the score reaches ``threshold`` exactly when ``p`` reaches the fast
stage's own threshold: the fast stage decides alone.
The band, ``w`` and the accurate stage's C come from cross-validation on the training
rows (``polyroute.signals.jailbreak_cascade_train``).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from polyroute.errors import ConfigError
from polyroute.signals.cascade import read_stages, stage_model, write_stages
from polyroute.signals.textmodel import TextModel

_EPS = 1e-7
#: the encoders a second key may use: microseconds a prompt, like the fast stage's (it is
#: scored on the event loop, before the accurate stage is queued)
KEY_ENCODERS = ("static", "ngram")


_WORD = re.compile(r"\w+")
#: characters a word, at most, for a prompt under the word floor
FLOOR_CHARS_PER_WORD = 8


def under_floor(text: str, min_words: int) -> bool:
    """Whether ``text`` has fewer than ``min_words`` words (runs of word characters) and
    fewer than ``FLOOR_CHARS_PER_WORD`` characters a word of the floor."""
    if len(text) >= FLOOR_CHARS_PER_WORD * min_words:
        return False
    return len(_WORD.findall(text)) < min_words


def _logit(p: float) -> float:
    p = min(max(p, _EPS), 1.0 - _EPS)
    return math.log(p / (1.0 - p))


@dataclass(frozen=True)
class JailbreakCascade:
    """A fast and an accurate jailbreak model, the band and the mixing weight."""

    fast: TextModel
    accurate: TextModel
    low: float
    high: float
    weight: float
    threshold: float
    #: prompts of more words than this never go to the accurate stage (None: no cap)
    max_words: int | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    #: the second key: an in-band prompt it scores below ``key_low`` is cleared
    key: TextModel | None = None
    key_low: float = 0.0
    #: prompts of fewer words than this are the fast stage's alone (None: no floor)
    min_words: int | None = None

    def short(self, text: str) -> bool:
        """Whether ``text`` is under the word floor: the fast stage decides it alone."""
        return self.min_words is not None and under_floor(text, self.min_words)

    def key_clears(self, s: float) -> bool:
        """Whether the second key's probability ``s`` clears an in-band prompt."""
        return self.key is not None and s < self.key_low

    def cleared(self, p: float) -> float:
        """The score of an in-band prompt the second key cleared: under the gate."""
        return self.low * p

    def sure(self, p: float, text: str) -> bool:
        """Whether the fast probability ``p`` of ``text`` stands without the accurate stage."""
        if not self.low <= p < self.high:
            return True
        return self.max_words is not None and len(text.split()) > self.max_words

    def combine(self, p: float, q: float) -> float:
        """The score of an in-band prompt from both stages' probabilities."""
        z = (1.0 - self.weight) * _logit(p) + self.weight * _logit(q)
        return self.low + (self.high - self.low) / (1.0 + math.exp(-max(min(z, 60.0), -60.0)))

    def fast_alone(self, p: float) -> float:
        """The score of an in-band prompt when only the fast stage can answer (see the
        module docstring); outside the band, ``p`` itself."""
        return float(fast_alone_map(p, self.low, self.high, self.fast.threshold, self.threshold))


def fast_alone_map(p: Any, low: float, high: float, own: float, cut: float) -> Any:
    """The fast probability ``p`` (a number or an array) mapped piecewise-linearly onto the
    band ``[low, high)`` so that it reaches ``cut`` exactly where ``p`` reaches the fast
    stage's own threshold ``own``; outside the band (or with ``own`` or ``cut`` outside
    it), ``p`` itself.  One mapping for the signal and the gate builder alike."""
    if not low <= own < high or not low < cut < high:
        return p
    # below ``own``: never in-band when the gate sits on the fast stage's own threshold
    under = low + (np.asarray(p) - low) * (cut - low) / (own - low) if own > low else cut
    over = cut + (np.asarray(p) - own) * (high - cut) / (high - own)
    return np.where((p < low) | (p >= high), p, np.where(p < own, under, over))


def save_jailbreak_cascade(
    model: JailbreakCascade, out: str | Path, info: dict[str, Any] | None = None
) -> Path:
    """Write ``model`` to the directory ``out`` (created); returns its path.  A second key
    is written by the gate builder only (``jailbreak_gate.build_gate``): refused here."""
    if model.key is not None:
        raise ConfigError(f"{out}: a cascade with a second key is written by "
                          "train-signal --stages --key, not here")  # fmt: skip
    fields: dict[str, Any] = {
        "band": [model.low, model.high],
        "accurate_weight": model.weight,
        "threshold": model.threshold,
        "labels": model.accurate.labels,
    }
    if model.min_words is not None:
        fields["accurate_min_words"] = model.min_words
    return write_stages(model, out, "jailbreak", fields, info)


def load_jailbreak_cascade(path: str | Path) -> JailbreakCascade:
    """The cascade saved at ``path``; any problem is a ConfigError naming the file."""
    found = read_stages(path, "jailbreak")
    file, manifest = found.file, found.manifest
    band, weight = manifest.get("band"), manifest.get("accurate_weight")
    threshold = manifest.get("threshold")
    if not (isinstance(band, list) and len(band) == 2 and all(map(_number, band))
            and 0.0 <= band[0] <= band[1] <= 1.0):  # fmt: skip
        raise ConfigError(f"{file}: 'band' must be [low, high] with 0 <= low <= high <= 1")
    if not isinstance(weight, int | float) or not _number(weight) or not 0.0 <= weight <= 1.0:
        raise ConfigError(f"{file}: 'accurate_weight' must be a number in [0, 1]")
    if not isinstance(threshold, int | float) or not _number(threshold) or not 0 <= threshold <= 1:
        raise ConfigError(f"{file}: 'threshold' must be a number in [0, 1]")
    key, key_low = _key(file, manifest)
    floor = manifest.get("accurate_min_words")
    if floor is not None and (isinstance(floor, bool) or not isinstance(floor, int) or floor < 1):
        raise ConfigError(f"{file}: 'accurate_min_words' must be a positive integer or null")
    return JailbreakCascade(found.fast, found.accurate, float(band[0]), float(band[1]),
                            float(weight), float(threshold), found.max_words,
                            found.metrics, key, key_low, floor)  # fmt: skip


def _key(file: Path, manifest: dict[str, Any]) -> tuple[TextModel | None, float]:
    """The manifest's second key (``{"stage": REF, "low": b}``), or none."""
    found = manifest.get("key")
    if found is None:
        return None, 0.0
    low = found.get("low") if isinstance(found, dict) else None
    if not isinstance(low, int | float) or not _number(low) or not 0.0 <= low <= 1.0:
        raise ConfigError(f'{file}: \'key\' must be {{"stage": DIR, "low": a number in [0, 1]}}')
    key = stage_model(file, manifest, "key", found.get("stage"), "jailbreak", field="key.stage")
    if key.encoder not in KEY_ENCODERS:
        raise ConfigError(f"{file}: the key's encoder is {key.encoder!r}; a key runs beside the "
                          f"fast stage and must be cheap: one of {list(KEY_ENCODERS)}")  # fmt: skip
    return key, float(low)


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
