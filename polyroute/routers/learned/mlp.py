"""A small multi-output MLP on prompt features (one hidden ReLU layer), trained with Adam in numpy.

Hyperparameters: ``encoder``, ``hidden`` (width), ``l2`` (weight decay),
``epochs``, ``lr``, ``batch_size``, ``seed``.  Predicts every model's success probability at once.
"""

from __future__ import annotations

from polyroute.routers.learned._two_layer import TwoLayerRouter


class MLPRouter(TwoLayerRouter):
    """``sigmoid(W2 relu(W1 x + b1) + b2)`` per model."""

    relu = True
    array_names = ("w1", "b1", "w2", "b2")
    inner_axis = "hidden"

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

    def _width(self) -> int:
        return self.hidden
