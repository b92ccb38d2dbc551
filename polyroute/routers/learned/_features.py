"""Routers over prompt features: one encoder, then a learner on ``X -> scores``.

:class:`FeatureRouter` fits its encoder on the training prompts, builds
``X = [encoder(prompts), text_features(prompts)]`` and hands ``(X, scores,
costs)`` to the subclass (some learners tune on the costs).  The stack reuses
``_fit_xy`` / ``_predict_x`` so that several learners share one encoding.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from polyroute.dataset import Matrix, RoutingDataset
from polyroute.embed import (
    ENCODERS,
    TEXT_DIM,
    Array,
    Encoder,
    encoder_from_state,
    make_encoder,
    text_features,
)
from polyroute.routers._artifact_state import SavedState
from polyroute.routers.base import Arrays, JSONDict, LearnedRouter

ENC_PREFIX = "enc/"
MINILM_DIM = 384  # all-MiniLM-L6-v2's width
STATIC_DIM = 256  # the static table's width (``polyroute.embed_static.STATIC_DIM``)
#: hyperparameters of a router that reads the prompt's meaning alone (MiniLM, no
#: TF-IDF, no surface text features): the view that holds up when the task mix shifts
SEMANTIC: dict[str, Any] = {"encoder": "minilm", "text_features": False}


def features(encoder: Encoder, prompts: Sequence[str], with_text: bool = True) -> Array:
    if not with_text:
        return encoder.encode(prompts)
    return np.concatenate([encoder.encode(prompts), text_features(prompts)], axis=1)


def semantic(encoder_id: str) -> dict[str, Any]:
    """:data:`SEMANTIC` for an ``encoder_id`` whose dense half is MiniLM; its
    static-table counterpart for ``static`` / ``static+tfidf``."""
    if encoder_id.split("+", maxsplit=1)[0] == "static":
        return {"encoder": "static", "text_features": False}
    return SEMANTIC


def is_semantic(params: dict[str, Any]) -> bool:
    """Whether a router with ``params`` reads the prompt's meaning alone (a dense encoder,
    no TF-IDF, no text features)."""
    return params.get("text_features") is False and params.get("encoder") in ("minilm", "static")


def view(x: Array, encoder_id: str, params: dict[str, Any]) -> Array | None:
    """The features a router with ``params`` reads, cut from ``x = features(encoder_id,
    prompts)`` (with text features), or None when ``x`` does not hold them.

    ``minilm+tfidf`` and ``static+tfidf`` scale each half by ``1/sqrt(2)``: the dense
    half is scaled back, so the cut equals what the router computes for itself from
    ``encoder: minilm`` (``static``).
    """
    if not is_semantic(params):
        return x
    dense = params["encoder"]
    if encoder_id.split("+", maxsplit=1)[0] != dense:
        return None
    width = MINILM_DIM if dense == "minilm" else STATIC_DIM
    if encoder_id == dense:
        return x[:, :width]
    return np.asarray(x[:, :width] * np.float32(np.sqrt(2.0)), dtype=np.float32)


class FeatureRouter(LearnedRouter):
    """A learned router whose input is the encoded prompt (see the module docstring)."""

    encoder: str
    encoder_: Encoder
    n_features_in_: int
    #: subclasses may expose this as a hyperparameter (kNN does, for the plain baseline)
    text_features: bool = True

    def _fit(self, dataset: RoutingDataset) -> None:
        self.encoder_ = make_encoder(self.encoder).fit(dataset.prompts)
        x = features(self.encoder_, dataset.prompts, self.text_features)
        self.n_features_in_ = x.shape[1]
        self._fit_xy(x, dataset.scores, dataset.costs)

    def _predict(self, prompts: list[str]) -> Matrix:
        return self._predict_x(features(self.encoder_, prompts, self.text_features))

    def for_serving(self) -> None:
        """The gateway's mode: no on-disk embedding cache (per-request prompts would only
        fill the disk) and MiniLM on ONNX Runtime without torch (``MiniLMEncoder.torch_free``)."""
        for enc in (self.encoder_, getattr(self.encoder_, "dense", None)):
            if enc is not None and hasattr(enc, "use_cache"):
                enc.use_cache = False
            if enc is not None and hasattr(enc, "torch_free"):
                enc.torch_free = True

    def _get_state(self) -> tuple[JSONDict, Arrays]:
        meta, arrays = self._xy_state()
        arrays.update({ENC_PREFIX + k: v for k, v in self.encoder_.state().items()})
        return {"encoder_id": self.encoder_.id, **meta}, arrays

    def _set_state(self, state: SavedState) -> None:
        encoder_id = state.text("encoder_id", ENCODERS)
        self.encoder_, width = _load_encoder(encoder_id, state.sub(ENC_PREFIX))
        text = TEXT_DIM if self.text_features else 0
        note = f"features = {width} from encoder {encoder_id!r}" + (
            f" + {text} text features" if text else ""
        )
        state.bind("features", width + text, note)
        self._set_xy_state(state)
        self.n_features_in_ = width + text

    def _probe(self) -> Matrix:
        return self._predict_x(np.zeros((1, self.n_features_in_), dtype=np.float32))

    @abstractmethod
    def _fit_xy(self, x: Array, y: Matrix, costs: Matrix | None = None) -> None: ...

    @abstractmethod
    def _predict_x(self, x: Array) -> Matrix: ...

    @abstractmethod
    def _xy_state(self) -> tuple[JSONDict, Arrays]: ...

    @abstractmethod
    def _set_xy_state(self, state: SavedState) -> None:
        """Restore the learner; ``state`` has ``features`` and ``models`` bound."""


def _load_encoder(encoder_id: str, state: SavedState) -> tuple[Encoder, int]:
    """The fitted encoder ``encoder_id`` from its saved arrays, and its output width."""
    width = MINILM_DIM if encoder_id in ("minilm", "minilm+tfidf") else 0
    arrays: dict[str, npt.NDArray[Any]] = {}
    if encoder_id in ("static", "static+tfidf"):
        from polyroute.embed_static import tokenizer

        vocab = tokenizer().get_vocab_size()
        state.bind("static_vocab", vocab, f"the bundled MiniLM tokenizer has {vocab} tokens")
        arrays = {
            "static_vectors": state.array(
                "static_vectors", ("static_vocab", "static_dims"), np.float16
            ),
            "static_weights": state.array("static_weights", ("static_vocab",), np.float32),
            "static_empty": state.array("static_empty", ("static_dims",), np.float32),
        }
        width = state.dim("static_dims")
    if encoder_id in ("tfidf", "minilm+tfidf", "static+tfidf"):
        arrays |= {
            "tfidf_terms": state.array("tfidf_terms", ("terms",), np.str_),
            "tfidf_idf": state.array("tfidf_idf", ("terms",), np.float32),
            "tfidf_components": state.array(
                "tfidf_components", ("tfidf_dims", "terms"), np.float32
            ),
        }
        width += state.dim("tfidf_dims")
    return encoder_from_state(encoder_id, arrays, where=state.arrays_file), width
