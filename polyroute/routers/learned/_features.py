"""Routers over prompt features: one encoder, then a learner on ``X -> scores``.

:class:`FeatureRouter` fits its encoder on the training prompts, builds
``X = [encoder(prompts), text_features(prompts)]`` and hands ``(X, scores,
costs)`` to the subclass (some learners tune on the costs).  The stack reuses
``_fit_xy`` / ``_predict_x`` so that several learners share one encoding.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Sequence

import numpy as np

from polyroute.dataset import Matrix, RoutingDataset
from polyroute.embed import Array, Encoder, encoder_from_state, make_encoder, text_features
from polyroute.routers.base import Arrays, JSONDict, LearnedRouter

ENC_PREFIX = "enc/"


def features(encoder: Encoder, prompts: Sequence[str], with_text: bool = True) -> Array:
    if not with_text:
        return encoder.encode(prompts)
    return np.concatenate([encoder.encode(prompts), text_features(prompts)], axis=1)


class FeatureRouter(LearnedRouter):
    """A learned router whose input is the encoded prompt (see the module docstring)."""

    encoder: str
    encoder_: Encoder
    #: subclasses may expose this as a hyperparameter (kNN does, for the plain baseline)
    text_features: bool = True

    def _fit(self, dataset: RoutingDataset) -> None:
        self.encoder_ = make_encoder(self.encoder).fit(dataset.prompts)
        x = features(self.encoder_, dataset.prompts, self.text_features)
        self._fit_xy(x, dataset.scores, dataset.costs)

    def _predict(self, prompts: list[str]) -> Matrix:
        return self._predict_x(features(self.encoder_, prompts, self.text_features))

    def use_disk_cache(self, enabled: bool) -> None:
        """Turn the encoder's on-disk embedding cache on or off (the gateway turns it off)."""
        for enc in (self.encoder_, getattr(self.encoder_, "minilm", None)):
            if enc is not None and hasattr(enc, "use_cache"):
                enc.use_cache = enabled

    def _get_state(self) -> tuple[JSONDict, Arrays]:
        meta, arrays = self._xy_state()
        arrays.update({ENC_PREFIX + k: v for k, v in self.encoder_.state().items()})
        return {"encoder_id": self.encoder_.id, **meta}, arrays

    def _set_state(self, meta: JSONDict, arrays: Arrays) -> None:
        enc = {k[len(ENC_PREFIX) :]: v for k, v in arrays.items() if k.startswith(ENC_PREFIX)}
        self.encoder_ = encoder_from_state(str(meta["encoder_id"]), enc)
        self._set_xy_state(meta, {k: v for k, v in arrays.items() if not k.startswith(ENC_PREFIX)})

    @abstractmethod
    def _fit_xy(self, x: Array, y: Matrix, costs: Matrix | None = None) -> None: ...

    @abstractmethod
    def _predict_x(self, x: Array) -> Matrix: ...

    @abstractmethod
    def _xy_state(self) -> tuple[JSONDict, Arrays]: ...

    @abstractmethod
    def _set_xy_state(self, meta: JSONDict, arrays: Arrays) -> None: ...
