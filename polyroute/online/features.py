"""What the online routers see of a prompt: shared features and an artifact's priors.

``x = [e[:dim], chars / 4000, 1]``: the first ``dim`` coordinates of the
``static`` encoder's embedding (its axes are principal components, largest
first, so a prefix is a PCA reduction; ``dim=None`` keeps all 256), the prompt's
length in about kilo-tokens (cost is linear in it) and the bias (last, as the
bandits expect).  The static encoder costs ~0.13 ms per prompt and is stateless,
so encoding a stream up front equals encoding each request as it comes.
:func:`artifact_priors` gives a trained router's predicted quality and estimated
cost per model, in the stream's model order (``warm_start``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from polyroute.dataset import Matrix
from polyroute.errors import ConfigError

if TYPE_CHECKING:
    from polyroute.embed import Encoder
    from polyroute.routers.base import LearnedRouter

CHARS_PER_KTOK = 4000.0


class FeatureMaker:
    """``transform(prompts) -> [n x width]`` (see the module docstring)."""

    def __init__(self, dim: int | None = 32, encoder: str = "static") -> None:
        if dim is not None and dim < 1:
            raise ConfigError(f"online features: dim must be >= 1 or None, got {dim}")
        self.dim = dim
        self.encoder = encoder
        self._encoder: Encoder | None = None

    @property
    def width(self) -> int:
        """Features per prompt: the embedding prefix, the length and the bias."""
        from polyroute.embed_static import STATIC_DIM

        return (STATIC_DIM if self.dim is None else self.dim) + 2

    def _encode(self, prompts: Sequence[str]) -> Matrix:
        if self._encoder is None:
            from polyroute.embed import make_encoder

            self._encoder = make_encoder(self.encoder)
        z = np.asarray(self._encoder.encode(list(prompts)), dtype=np.float64)
        if self.dim is not None and self.dim > z.shape[1]:
            raise ConfigError(
                f"online features: dim {self.dim} exceeds encoder {self.encoder!r}'s "
                f"{z.shape[1]} dimensions"
            )
        return z if self.dim is None else z[:, : self.dim]

    def transform(self, prompts: Sequence[str]) -> Matrix:
        z = self._encode(prompts)
        chars = np.array([len(p) for p in prompts], dtype=np.float64) / CHARS_PER_KTOK
        return np.concatenate([z, chars[:, None], np.ones((len(prompts), 1))], axis=1)


def artifact_priors(
    router: LearnedRouter, prompts: Sequence[str], models: Sequence[str], where: str
) -> tuple[Matrix, Matrix]:
    """The artifact's predicted quality and estimated cost ``[n x models]``, in ``models`` order."""
    missing = [m for m in models if m not in router.models_]
    if missing:
        raise ConfigError(
            f"{where}: the artifact does not know model(s) {', '.join(missing)} "
            f"(it was trained on {', '.join(router.models_)})"
        )
    cols = [router.models_.index(m) for m in models]
    quality = router.predict(list(prompts))[:, cols]
    cost = router.estimate_costs(list(prompts))[:, cols]
    return quality, cost
