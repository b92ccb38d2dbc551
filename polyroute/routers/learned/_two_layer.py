"""Two dense layers over prompt features, trained by :func:`train_two_layer`: the shared
body of the MLP router (a ReLU between the layers) and the MF router (none: a low-rank
bilinear map).  Subclasses keep their own ``__init__`` (its names are the public
hyperparameters, ``hidden`` or ``dim``) and name the saved arrays."""

from __future__ import annotations

from typing import ClassVar

from polyroute.dataset import Matrix
from polyroute.embed import Array
from polyroute.routers._artifact_state import SavedState
from polyroute.routers.base import Arrays, JSONDict
from polyroute.routers.learned._features import FeatureRouter
from polyroute.routers.learned._optim import F64, single_thread, train_two_layer, two_layer_forward


class TwoLayerRouter(FeatureRouter):
    """``sigmoid(U act(W x + c) + b)`` per model; ``act`` is ReLU when ``relu``."""

    #: a ReLU between the two layers
    relu: ClassVar[bool]
    #: the saved arrays' names: first layer, its bias, second layer, its bias
    array_names: ClassVar[tuple[str, str, str, str]]
    #: the saved arrays' name for the inner axis
    inner_axis: ClassVar[str]

    l2: float
    epochs: int
    lr: float
    batch_size: int
    seed: int
    layers_: list[F64]

    def _width(self) -> int:
        """The inner layer's width (the subclass's hyperparameter)."""
        raise NotImplementedError

    def _fit_xy(self, x: Array, y: Matrix, costs: Matrix | None = None) -> None:
        with single_thread():
            params = train_two_layer(
                x,
                y,
                width=self._width(),
                relu=self.relu,
                l2=self.l2,
                lr=self.lr,
                epochs=self.epochs,
                batch_size=self.batch_size,
                seed=self.seed,
            )
        self.layers_ = list(params)

    def _predict_x(self, x: Array) -> Matrix:
        return two_layer_forward(x, self.layers_, relu=self.relu)

    def _xy_state(self) -> tuple[JSONDict, Arrays]:
        return {}, dict(zip(self.array_names, self.layers_, strict=True))

    def _set_xy_state(self, state: SavedState) -> None:
        inner = self.inner_axis
        axes = (("features", inner), (inner,), (inner, "models"), ("models",))
        self.layers_ = [
            state.array(name, shape) for name, shape in zip(self.array_names, axes, strict=True)
        ]
