"""``similarity``: how close the last user message is to a route's ``examples``.

Semantic-router style routes: the value is the highest cosine similarity (-1..1)
between the prompt and any of the signal's example utterances, on the ``static``
encoder (default; about 0.1 ms) or ``minilm``.  Used bare in a rule (``when:
NAME``) it fires at ``threshold``; ``{signal: NAME, ge: 0.6}`` compares the value.

The default threshold is calibrated when the signal loads: the similarity that at
most 1 % of a background of varied prompts reach (every 11th prompt of the bundled
dcrouter sample: 14 tasks, maths to trivia to code), so a route fires on its own
kind of request and rarely on anything else.  Set ``threshold`` to override it.
The examples are encoded at start-up (``warmup``) or on first use; any failure
gives ``None`` (unknown), never a failed request.
"""

from __future__ import annotations

import json
import math
from functools import lru_cache
from importlib import resources
from typing import Literal

import numpy as np
from pydantic import Field

from polyroute.embed import Encoder, serving_encoder
from polyroute.errors import ConfigError
from polyroute.signals.base import SignalOptions
from polyroute.signals.neural import EncoderSignal, is_blocking_encoder
from polyroute.types import Request, SignalValue

BACKGROUND_EVERY = 11
BACKGROUND_CHARS = 2000
BACKGROUND_QUANTILE = 0.99


class SimilarityOptions(SignalOptions):
    examples: list[str] = Field(min_length=1, max_length=10_000)
    threshold: float | None = Field(default=None, ge=-1.0, le=1.0)
    encoder: Literal["static", "minilm"] = "static"


@lru_cache(maxsize=1)
def background_prompts() -> tuple[str, ...]:
    """Every ``BACKGROUND_EVERY``-th prompt of the bundled dcrouter sample (cut)."""
    path = resources.files("polyroute") / "data" / "dcrouter" / "train.jsonl"
    with path.open(encoding="utf-8") as fh:
        rows = [line for i, line in enumerate(fh) if i % BACKGROUND_EVERY == 0]
    return tuple(str(json.loads(row)["prompt"])[:BACKGROUND_CHARS] for row in rows)


class SimilaritySignal(EncoderSignal):
    Options = SimilarityOptions
    options: SimilarityOptions
    threshold: float = math.nan  # known once the examples are encoded

    def setup(self) -> None:
        for i, text in enumerate(self.options.examples):
            if not text.strip():
                raise ConfigError(f"{self.where}.examples[{i}]: expected a non-empty utterance")
        if self.options.threshold is not None:
            self.threshold = self.options.threshold
        self.blocking = is_blocking_encoder(self.options.encoder)

    def load_encoder(self) -> Encoder:
        encoder = serving_encoder(self.options.encoder)
        self.vectors = _unit(encoder.encode(self.options.examples))
        if self.options.threshold is None:
            background = _unit(encoder.encode(list(background_prompts())))
            nearest = (background @ self.vectors.T).max(axis=1)
            self.threshold = round(float(np.quantile(nearest, BACKGROUND_QUANTILE)), 4)
        return encoder

    def evaluate(self, encoder: Encoder, request: Request) -> SignalValue:
        vector = _unit(encoder.encode([self.read_text(request, "prompt")]))[0]
        return round(self._finite((self.vectors @ vector).max()), 6)

    def fires(self, value: SignalValue) -> bool:
        return isinstance(value, float) and value >= self.threshold


def _unit(x: np.ndarray) -> np.ndarray:
    z = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(z, axis=1, keepdims=True)
    return np.asarray(z / np.maximum(norms, 1e-12), dtype=np.float32)
