"""Cluster prior: k-means over prompt embeddings, per-cluster success rates with smoothing.

A prompt's predicted quality is the (soft-assigned) success rate of its nearest
clusters, each rate shrunk toward the global mean by ``prior`` pseudo-counts.
Hyperparameters: ``encoder``, ``n_clusters``, ``prior``, ``temperature``
(softmax over cosine similarity to the centres; small = nearly hard), ``seed``,
``text_features`` (append the surface text features to the embedding).
"""

from __future__ import annotations

import warnings

import numpy as np

from polyroute.dataset import Matrix
from polyroute.embed import Array
from polyroute.routers._artifact_state import SavedState
from polyroute.routers.base import Arrays, JSONDict
from polyroute.routers.learned._features import FeatureRouter
from polyroute.routers.learned._optim import single_thread
from polyroute.routers.learned.knn import _unit


def _soft(sims: Matrix, temperature: float) -> Matrix:
    z = (sims - sims.max(axis=1, keepdims=True)) / temperature
    e = np.exp(z)
    return np.asarray(e / e.sum(axis=1, keepdims=True))


class ClusterRouter(FeatureRouter):
    """Per-cluster mean scores, smoothed toward the global mean."""

    centres_: Array
    rates_: Matrix

    def __init__(
        self,
        encoder: str = "minilm+tfidf",
        n_clusters: int = 32,
        prior: float = 5.0,
        temperature: float = 0.02,
        seed: int = 0,
        *,
        text_features: bool = True,
    ) -> None:
        self.encoder = encoder
        self.text_features = text_features
        self.n_clusters = n_clusters
        self.prior = prior
        self.temperature = temperature
        self.seed = seed

    def _fit_xy(self, x: Array, y: Matrix, costs: Matrix | None = None) -> None:
        from sklearn.cluster import KMeans
        from sklearn.exceptions import ConvergenceWarning

        z = _unit(x)
        # no more clusters than distinct prompts (k-means would leave some empty)
        k = max(1, min(self.n_clusters, np.unique(z, axis=0).shape[0]))
        with single_thread(), warnings.catch_warnings():
            # near-duplicate prompts can still leave a cluster empty: its rate is the prior
            warnings.simplefilter("ignore", ConvergenceWarning)
            km = KMeans(n_clusters=k, n_init=2, random_state=self.seed).fit(z)
        centres = km.cluster_centers_.astype(np.float32)
        centres /= np.maximum(np.linalg.norm(centres, axis=1, keepdims=True), 1e-12)
        labels = np.asarray(km.labels_)
        mean = y.mean(axis=0)
        counts = np.bincount(labels, minlength=k).astype(np.float64)
        sums = np.zeros((k, y.shape[1]))
        np.add.at(sums, labels, y)
        self.centres_ = centres
        self.rates_ = (sums + self.prior * mean) / (counts[:, None] + self.prior)

    def _predict_x(self, x: Array) -> Matrix:
        sims = np.asarray(_unit(x) @ self.centres_.T, dtype=np.float64)
        return _soft(sims, self.temperature) @ self.rates_

    def _xy_state(self) -> tuple[JSONDict, Arrays]:
        return {}, {"centres": self.centres_, "rates": self.rates_}

    def _set_xy_state(self, state: SavedState) -> None:
        self.centres_ = state.array("centres", ("clusters", "features"), np.float32)
        self.rates_ = state.array("rates", ("clusters", "models"))
