"""k-nearest-neighbour router: the score of a prompt's nearest training prompts (cosine).

Hyperparameters: ``encoder``; ``k`` (``None`` = tuned at fit time over :data:`K_GRID`
by the leave-one-out AIQ of the cost-quality curve, or the Brier score when no
costs are given); ``weighting`` (``"distance"``: weights
``1 / (1 - cos + 0.05)``, or ``"uniform"``); ``prior`` (pseudo-count pulling
each prediction toward the training mean, which steadies small neighbourhoods);
``text_features`` (append the surface text features; ``false`` gives the
literature's plain embedding kNN); ``dim`` (neighbours are searched in the top
``dim`` principal axes of the unit feature vectors, ``None`` = all: cheaper per
query, and no worse on dcrouter).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from polyroute.dataset import Matrix
from polyroute.embed import Array
from polyroute.routers._artifact_state import SavedState
from polyroute.routers.base import Arrays, JSONDict
from polyroute.routers.learned._curve import aiq
from polyroute.routers.learned._features import FeatureRouter

K_GRID = (5, 10, 20, 40, 80, 160, 320)
_CHUNK = 1024


def _unit(x: Array) -> Array:
    z = np.asarray(x, dtype=np.float32)  # embedding + scaled text features
    n = np.linalg.norm(z, axis=1, keepdims=True)
    n[n == 0] = 1.0
    return np.asarray(z / n, dtype=np.float32)


def _neighbours(
    q: Array, ref: Array, k: int, exclude_self: bool = False
) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.float32]]:
    """Indices and cosine similarities of the ``k`` nearest rows of ``ref``, best first."""
    k = min(k, ref.shape[0] - (1 if exclude_self else 0))
    idx_out, sim_out = [], []
    for s in range(0, q.shape[0], _CHUNK):
        sims = q[s : s + _CHUNK] @ ref.T
        if exclude_self:
            rows = np.arange(sims.shape[0])
            sims[rows, rows + s] = -np.inf
        part = np.argpartition(-sims, k - 1, axis=1)[:, :k]
        psim = np.take_along_axis(sims, part, axis=1)
        order = np.argsort(-psim, axis=1)
        idx_out.append(np.take_along_axis(part, order, axis=1))
        sim_out.append(np.take_along_axis(psim, order, axis=1))
    return np.concatenate(idx_out).astype(np.intp), np.concatenate(sim_out)


def _weights(sims: npt.NDArray[np.float32], weighting: str) -> npt.NDArray[np.float64]:
    if weighting == "uniform":
        return np.ones(sims.shape, dtype=np.float64)
    return 1.0 / (1.0 - sims.astype(np.float64) + 0.05)


def _estimate(
    y: Matrix, idx: npt.NDArray[np.intp], w: npt.NDArray[np.float64], prior: float, mean: Matrix
) -> Matrix:
    num = np.einsum("nk,nkm->nm", w, y[idx]) + prior * mean
    return np.asarray(num / (w.sum(axis=1, keepdims=True) + prior))


class KNNRouter(FeatureRouter):
    """Predicted quality = weighted mean score of the ``k`` nearest training prompts."""

    k_: int
    proj_mean_: Array
    proj_: Array
    x_: Array
    y_: Matrix
    mean_: Matrix

    def __init__(
        self,
        encoder: str = "minilm+tfidf",
        k: int | None = None,
        weighting: str = "distance",
        prior: float = 1.0,
        dim: int | None = 128,
        *,
        text_features: bool = True,
    ) -> None:
        self.encoder = encoder
        self.text_features = text_features
        self.k = k
        self.weighting = weighting
        self.prior = prior
        self.dim = dim

    def _project(self, x: Array) -> Array:
        z = _unit(x)
        if self.proj_.size:
            z = _unit(np.asarray((z - self.proj_mean_) @ self.proj_, dtype=np.float32))
        return z

    def _fit_pca(self, z: Array) -> None:
        """Principal axes of the unit vectors: 4x fewer bytes to scan per query, same neighbours."""
        self.proj_mean_ = np.zeros((0,), dtype=np.float32)
        self.proj_ = np.zeros((0, 0), dtype=np.float32)
        if self.dim is None or not 0 < self.dim < min(z.shape):
            return
        mean = z.mean(axis=0)
        centred = (z - mean).astype(np.float64)
        _, vecs = np.linalg.eigh(centred.T @ centred)
        self.proj_mean_ = mean.astype(np.float32)
        self.proj_ = np.ascontiguousarray(vecs[:, ::-1][:, : self.dim], dtype=np.float32)

    def _fit_xy(self, x: Array, y: Matrix, costs: Matrix | None = None) -> None:
        self._fit_pca(_unit(x))
        self.x_ = self._project(x)
        self.y_ = np.asarray(y, dtype=np.float64)
        self.mean_ = self.y_.mean(axis=0, keepdims=True)
        self.k_ = self.k if self.k is not None else self._tune_k(costs)

    def _tune_k(self, costs: Matrix | None) -> int:
        if self.x_.shape[0] < 3:
            return 1
        grid = [k for k in K_GRID if k < self.x_.shape[0]] or [1]
        idx, sims = _neighbours(self.x_, self.x_, max(grid), exclude_self=True)
        w = _weights(sims, self.weighting)
        best, best_err = grid[0], np.inf
        for k in grid:
            pred = _estimate(self.y_, idx[:, :k], w[:, :k], self.prior, self.mean_)
            if costs is None:
                err = float(((pred - self.y_) ** 2).mean())
            else:
                err = -aiq(pred, self.y_, costs)
            if err < best_err:
                best, best_err = k, err
        return best

    def _predict_x(self, x: Array) -> Matrix:
        idx, sims = _neighbours(self._project(x), self.x_, self.k_)
        return _estimate(self.y_, idx, _weights(sims, self.weighting), self.prior, self.mean_)

    def _xy_state(self) -> tuple[JSONDict, Arrays]:
        arrays: Arrays = {
            "x": self.x_,
            "y": self.y_,
            "proj_mean": self.proj_mean_,
            "proj": self.proj_,
        }
        return {"k": self.k_}, arrays

    def _set_xy_state(self, state: SavedState) -> None:
        self.k_ = state.integer("k", low=1)
        if state.shape("proj") == (0, 0):  # fitted without PCA: rows are in feature space
            self.proj_mean_ = state.array("proj_mean", (0,), np.float32)
            self.proj_ = state.array("proj", (0, 0), np.float32)
            width = "features"
        else:
            self.proj_mean_ = state.array("proj_mean", ("features",), np.float32)
            self.proj_ = state.array("proj", ("features", "pca_dims"), np.float32)
            width = "pca_dims"
        self.x_ = state.array("x", ("rows", width), np.float32)
        self.y_ = state.array("y", ("rows", "models"))
        self.mean_ = self.y_.mean(axis=0, keepdims=True)
