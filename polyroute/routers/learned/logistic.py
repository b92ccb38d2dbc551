"""Per-model logistic regression on prompt features (one L-BFGS fit for all models).

Soft labels are used as is, so fractional scores (F1/ROUGE) need no thresholding.
Hyperparameters: ``encoder``, ``l2`` (ridge strength on the weights) and
``text_features`` (append the surface text features; ``false`` with
``encoder: minilm`` reads the prompt's meaning alone, which holds up best when
the mix of tasks shifts).
"""

from __future__ import annotations

import numpy as np

from polyroute.dataset import Matrix
from polyroute.embed import Array
from polyroute.routers._artifact_state import SavedState
from polyroute.routers.base import Arrays, JSONDict
from polyroute.routers.learned._features import FeatureRouter
from polyroute.routers.learned._optim import F64, fit_logistic, sigmoid


class LogisticRouter(FeatureRouter):
    """``P(model m answers well | prompt) = sigmoid(x . w_m + b_m)``."""

    weights_: F64
    bias_: F64

    def __init__(
        self, encoder: str = "minilm+tfidf", l2: float = 1e-3, *, text_features: bool = True
    ) -> None:
        self.encoder = encoder
        self.l2 = l2
        self.text_features = text_features

    def _fit_xy(self, x: Array, y: Matrix, costs: Matrix | None = None) -> None:
        self.weights_, self.bias_ = fit_logistic(x, y, self.l2)

    def _predict_x(self, x: Array) -> Matrix:
        return sigmoid(np.asarray(x, dtype=np.float64) @ self.weights_ + self.bias_)

    def _xy_state(self) -> tuple[JSONDict, Arrays]:
        return {}, {"weights": self.weights_, "bias": self.bias_}

    def _set_xy_state(self, state: SavedState) -> None:
        self.weights_ = state.array("weights", ("features", "models"))
        self.bias_ = state.array("bias", ("models",))
