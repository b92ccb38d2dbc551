"""Matrix factorisation in the style of RouteLLM, generalised to N models.

``logit P(m answers well | x) = u_m . (W x + c) + b_m``: prompts are projected
into a ``dim``-dimensional space shared with learned model embeddings ``u_m``
(RouteLLM's ``w2 (v_m * (W1 x))`` folded into ``u_m``).  Trained full-batch
with Adam on soft-label cross-entropy plus L2 weight decay, in numpy.
"""

from __future__ import annotations

from polyroute.routers.learned._two_layer import TwoLayerRouter


class MFRouter(TwoLayerRouter):
    """Low-rank bilinear router: prompt projection x model embedding."""

    relu = False
    array_names = ("proj", "proj_bias", "model_emb", "model_bias")
    inner_axis = "rank"

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

    def _width(self) -> int:
        return self.dim
