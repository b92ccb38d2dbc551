"""When a cached prompt counts as the same request: cosine, a threshold and a margin rule.

A lookup scores the prompt's unit vector against every entry of its scope (one
matrix-vector product) and keeps the best and the runner-up.  The best entry hits when

- its cosine is at least ``accept`` (unambiguous), or
- its cosine is at least ``threshold`` *and* it beats the runner-up by ``margin``:
  a prompt that sits between two cached prompts is ambiguous, and is a miss.

``threshold == accept`` is the plain one-threshold cosine.  The constants of
:data:`DEFAULTS` were chosen by ``benchmarks/bench_cache.py`` (see
``benchmarks/RESULTS_cache.md``): leave-intent-out cross-validation over the
CLINC150 *train* split (5 folds of 30 intents, 20 paraphrases per intent plus
the 100 out-of-scope rows, each its own request), the largest hit rate whose
wrong-hit rate stays <= 0.8 % of requests over the pooled streams.  A threshold
is only meaningful for the encoder it was calibrated on: :attr:`Similarity.encoder`
names it, and the request pipeline must embed prompts with that encoder.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from polyroute.errors import ConfigError


@dataclass(frozen=True, slots=True)
class Similarity:
    """The hit rule of an index, for vectors of one encoder (unit norm)."""

    encoder: str
    dim: int
    threshold: float
    accept: float
    margin: float = 0.0

    def __post_init__(self) -> None:
        if not -1.0 <= self.threshold <= self.accept:
            raise ConfigError(
                f"similarity for {self.encoder!r}: expected -1 <= threshold <= accept, "
                f"got threshold={self.threshold}, accept={self.accept}"
            )
        if self.margin < 0.0 or self.dim <= 0:
            raise ConfigError(f"similarity for {self.encoder!r}: margin >= 0 and dim > 0")

    def unit(self, vector: npt.ArrayLike) -> npt.NDArray[np.float32]:
        """``vector`` as a flat float32 unit vector; a ValueError if it has the wrong size."""
        v = np.asarray(vector, dtype=np.float32).reshape(-1)
        if v.shape[0] != self.dim:
            raise ValueError(
                f"semantic cache calibrated for {self.encoder!r} ({self.dim} dims) "
                f"got a {v.shape[0]}-dim vector"
            )
        norm = float(np.linalg.norm(v))
        return v / np.float32(norm) if norm > 0 else v

    def hits(self, best: float, runner_up: float) -> bool:
        """Whether the best entry (cosine ``best``) answers, given the runner-up's cosine."""
        if best >= self.accept:
            return True
        return best >= self.threshold and best - runner_up >= self.margin


#: Calibrated rules per encoder id (``polyroute.embed.make_encoder``); provenance above.
DEFAULTS: dict[str, Similarity] = {
    "minilm": Similarity("minilm", 384, threshold=0.70, accept=0.78, margin=0.08),
    "static": Similarity("static", 256, threshold=0.80, accept=0.88, margin=0.04),
}


def default_similarity(encoder: str) -> Similarity:
    """The calibrated rule for ``encoder``; a ConfigError for an encoder never calibrated."""
    try:
        return DEFAULTS[encoder]
    except KeyError:
        known = ", ".join(sorted(DEFAULTS))
        raise ConfigError(
            f"semantic_cache: no calibrated similarity for encoder {encoder!r}; "
            f"expected one of: {known}"
        ) from None
