"""Matrix factorisation in the style of RouteLLM, generalised to N models.

``logit P(m answers well | x) = u_m . (W x + c) + b_m``: prompts are projected
into a ``dim``-dimensional space shared with learned model embeddings ``u_m``
(RouteLLM's ``w2 (v_m * (W1 x))`` folded into ``u_m``).  Trained full-batch
with Adam on soft-label cross-entropy plus L2 weight decay, in numpy.
"""

from __future__ import annotations

from polyroute.dataset import Matrix
from polyroute.embed import Array
from polyroute.routers._artifact_state import SavedState
from polyroute.routers.base import Arrays, JSONDict
from polyroute.routers.learned._features import FeatureRouter
from polyroute.routers.learned._optim import F64, single_thread, train_two_layer, two_layer_forward


class MFRouter(FeatureRouter):
    """Low-rank bilinear router: prompt projection x model embedding."""

    proj_: F64
    proj_bias_: F64
    model_emb_: F64
    model_bias_: F64

    def __init__(
        self,
        *,
        encoder: str = "minilm+tfidf",
        dim: int = 32,
        l2: float = 1e-4,
        epochs: int = 40,
        lr: float = 0.003,
        batch_size: int = 128,
        seed: int = 0,
    ) -> None:
        self.encoder = encoder
        self.dim = dim
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
                width=self.dim,
                relu=False,
                l2=self.l2,
                lr=self.lr,
                epochs=self.epochs,
                batch_size=self.batch_size,
                seed=self.seed,
            )
        self.proj_, self.proj_bias_, self.model_emb_, self.model_bias_ = params

    def _predict_x(self, x: Array) -> Matrix:
        return two_layer_forward(
            x, [self.proj_, self.proj_bias_, self.model_emb_, self.model_bias_], relu=False
        )

    def _xy_state(self) -> tuple[JSONDict, Arrays]:
        return {}, {
            "proj": self.proj_,
            "proj_bias": self.proj_bias_,
            "model_emb": self.model_emb_,
            "model_bias": self.model_bias_,
        }

    def _set_xy_state(self, state: SavedState) -> None:
        self.proj_ = state.array("proj", ("features", "rank"))
        self.proj_bias_ = state.array("proj_bias", ("rank",))
        self.model_emb_ = state.array("model_emb", ("rank", "models"))
        self.model_bias_ = state.array("model_bias", ("models",))
