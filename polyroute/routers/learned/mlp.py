"""A small multi-output MLP on prompt features (one hidden ReLU layer), trained with Adam in numpy.

Hyperparameters: ``encoder``, ``hidden`` (width), ``l2`` (weight decay),
``epochs``, ``lr``, ``batch_size``, ``seed``.  Predicts every model's success probability at once.
"""

from __future__ import annotations

from polyroute.dataset import Matrix
from polyroute.embed import Array
from polyroute.routers._artifact_state import SavedState
from polyroute.routers.base import Arrays, JSONDict
from polyroute.routers.learned._features import FeatureRouter
from polyroute.routers.learned._optim import F64, single_thread, train_two_layer, two_layer_forward


class MLPRouter(FeatureRouter):
    """``sigmoid(W2 relu(W1 x + b1) + b2)`` per model."""

    w1_: F64
    b1_: F64
    w2_: F64
    b2_: F64

    def __init__(
        self,
        *,
        encoder: str = "minilm+tfidf",
        hidden: int = 128,
        l2: float = 1e-3,
        epochs: int = 40,
        lr: float = 0.003,
        batch_size: int = 128,
        seed: int = 0,
    ) -> None:
        self.encoder = encoder
        self.hidden = hidden
        self.l2 = l2
        self.epochs = epochs
        self.lr = lr
        self.batch_size = batch_size
        self.seed = seed

    def _fit_xy(self, x: Array, y: Matrix, costs: Matrix | None = None) -> None:
        with single_thread():
            params = train_two_layer(
                x,
                y,
                width=self.hidden,
                relu=True,
                l2=self.l2,
                lr=self.lr,
                epochs=self.epochs,
                batch_size=self.batch_size,
                seed=self.seed,
            )
        self.w1_, self.b1_, self.w2_, self.b2_ = params

    def _predict_x(self, x: Array) -> Matrix:
        return two_layer_forward(x, [self.w1_, self.b1_, self.w2_, self.b2_], relu=True)

    def _xy_state(self) -> tuple[JSONDict, Arrays]:
        return {}, {"w1": self.w1_, "b1": self.b1_, "w2": self.w2_, "b2": self.b2_}

    def _set_xy_state(self, state: SavedState) -> None:
        self.w1_ = state.array("w1", ("features", "hidden"))
        self.b1_ = state.array("b1", ("hidden",))
        self.w2_ = state.array("w2", ("hidden", "models"))
        self.b2_ = state.array("b2", ("models",))
