"""Stacked router: base routers' out-of-fold predictions -> a per-model logistic meta-learner.

Fit: encode the prompts once; for each of ``folds`` splits fit every base
learner on the other folds and predict the held-out one; train the meta-learner
on those out-of-fold predictions; finally refit every base on all rows.
``meta="logistic"``: per model, a soft-label logistic regression on the logits
of every base's prediction for that model, every base's mean logit over all
models (how hard the prompt looks) and the text features.  ``meta="mean"``:
the plain average of the bases.

Hyperparameters: ``encoder``, ``bases`` (registry names of feature routers),
``base_params`` (per-base hyperparameters, JSON), ``folds``, ``meta``, ``meta_l2``, ``seed``.
"""

from __future__ import annotations

from typing import Any, Self

import numpy as np

from polyroute.dataset import Matrix, RoutingDataset
from polyroute.embed import TEXT_DIM, Array, Encoder
from polyroute.errors import ConfigError
from polyroute.routers._artifact_state import SavedState
from polyroute.routers.base import Arrays, CostModel, JSONDict
from polyroute.routers.learned._features import FeatureRouter
from polyroute.routers.learned._optim import (
    F64,
    Split,
    fit_logistic,
    kfold_indices,
    logit,
    sigmoid,
)

DEFAULT_BASES = ("cluster", "knn", "logistic", "mlp")


def make_base(name: str, params: dict[str, Any]) -> FeatureRouter:
    from polyroute.routers.learned import get_router

    cls = get_router(name, "stack bases")
    if not issubclass(cls, FeatureRouter) or cls.__name__ == "StackRouter":
        raise ConfigError(f"stack bases: {name!r} is not a feature router")
    return cls(**params)


class StackRouter(FeatureRouter):
    """A meta-learner over base routers' out-of-fold predictions (see module docstring)."""

    bases_: list[FeatureRouter]
    meta_w_: F64
    meta_b_: F64

    def __init__(
        self,
        *,
        encoder: str = "minilm+tfidf",
        bases: list[str] | tuple[str, ...] = DEFAULT_BASES,
        base_params: dict[str, dict[str, Any]] | None = None,
        folds: int = 5,
        meta: str = "logistic",
        meta_l2: float = 1e-2,
        seed: int = 0,
    ) -> None:
        self.encoder = encoder
        self.bases = bases
        self.base_params = base_params
        self.folds = folds
        self.meta = meta
        self.meta_l2 = meta_l2
        self.seed = seed

    def _new_bases(self) -> list[FeatureRouter]:
        params = self.base_params or {}
        return [make_base(b, dict(params.get(b, {}))) for b in self.bases]

    def _meta_x(self, preds: list[Matrix], x: Array, m: int) -> F64:
        cols = [logit(p[:, m : m + 1], 1e-3) for p in preds]
        cols += [logit(p, 1e-3).mean(axis=1, keepdims=True) for p in preds]  # prompt difficulty
        return np.concatenate([*cols, np.asarray(x[:, -TEXT_DIM:], dtype=np.float64)], axis=1)

    def _fit_meta(self, preds: list[Matrix], x: Array, y: Matrix) -> tuple[F64, F64]:
        if self.meta == "mean":
            return np.zeros((0, 0)), np.zeros(0)
        ws, bs = [], []
        for m in range(y.shape[1]):
            w, b = fit_logistic(self._meta_x(preds, x, m), y[:, m : m + 1], self.meta_l2)
            ws.append(w[:, 0])
            bs.append(b[0])
        return np.stack(ws, axis=1), np.asarray(bs)

    def _apply_meta(self, preds: list[Matrix], x: Array, w: F64, b: F64) -> Matrix:
        if self.meta == "mean":
            return np.asarray(np.mean(preds, axis=0))
        # vectorised form of ``_meta_x(preds, x, m) @ w[:, m]`` for every model m
        nb = len(preds)
        lg = np.stack([logit(p, 1e-3) for p in preds])  # [bases x n x models]
        z = np.einsum("bnm,bm->nm", lg, w[:nb]) + lg.mean(axis=2).T @ w[nb : 2 * nb]
        z += np.asarray(x[:, -TEXT_DIM:], dtype=np.float64) @ w[2 * nb :]
        return sigmoid(z + b)

    def _oof(self, x: Array, y: Matrix, costs: Matrix | None) -> list[Matrix]:
        oof = [np.zeros_like(y) for _ in self.bases]
        k = max(2, min(self.folds, x.shape[0]))
        for train, test in kfold_indices(x.shape[0], k, self.seed):
            for j, base in enumerate(self._new_bases()):
                base._fit_xy(x[train], y[train], None if costs is None else costs[train])
                oof[j][test] = base._predict_x(x[test])
        return oof

    def _fit_on(self, x: Array, y: Matrix, oof: list[Matrix], costs: Matrix | None = None) -> None:
        self.meta_w_, self.meta_b_ = self._fit_meta(oof, x, y)
        self.bases_ = self._new_bases()
        for base in self.bases_:
            base._fit_xy(x, y, costs)

    def _fit_xy(self, x: Array, y: Matrix, costs: Matrix | None = None) -> None:
        if self.meta not in ("logistic", "mean"):
            raise ConfigError(f"stack: meta must be 'logistic' or 'mean', got {self.meta!r}")
        oof = self._oof(x, y, costs) if self.meta == "logistic" else []
        self._fit_on(x, y, oof, costs)

    def fit_from_oof(
        self, dataset: RoutingDataset, encoder: Encoder, x: Array, oof: list[Matrix]
    ) -> Self:
        """Fit from out-of-fold base predictions already computed (by ``auto``) on ``x``."""
        self.models_ = tuple(dataset.models)
        self.cost_model_ = CostModel.fit(dataset)
        self.encoder_ = encoder
        self.n_features_in_ = x.shape[1]
        self._fit_on(x, dataset.scores, oof, dataset.costs)
        return self

    def cv_meta(
        self, oof: list[Matrix], x: Array, y: Matrix, seed: int, splits: list[Split] | None = None
    ) -> Matrix:
        """Out-of-fold predictions of the meta-learner itself, from the bases' out-of-fold ones
        (over ``splits``, or ``folds`` shuffled row folds)."""
        out = np.zeros_like(y)
        if splits is None:
            splits = kfold_indices(x.shape[0], max(2, min(self.folds, x.shape[0])), seed)
        for train, test in splits:
            w, b = self._fit_meta([p[train] for p in oof], x[train], y[train])
            out[test] = self._apply_meta([p[test] for p in oof], x[test], w, b)
        return out

    def _predict_x(self, x: Array) -> Matrix:
        preds = [b._predict_x(x) for b in self.bases_]
        return self._apply_meta(preds, x, self.meta_w_, self.meta_b_)

    def _xy_state(self) -> tuple[JSONDict, Arrays]:
        arrays: Arrays = {"meta_w": self.meta_w_, "meta_b": self.meta_b_}
        metas = []
        for j, base in enumerate(self.bases_):
            meta, arr = base._xy_state()
            metas.append(meta)
            arrays.update({f"base{j}/{k}": v for k, v in arr.items()})
        return {"base_meta": metas}, arrays

    def _set_xy_state(self, state: SavedState) -> None:
        self.bases_ = self._new_bases()
        n = len(self.bases_)
        mean = self.meta == "mean"  # the plain average has no meta-learner weights
        self.meta_w_ = state.array("meta_w", (0, 0) if mean else (2 * n + TEXT_DIM, "models"))
        self.meta_b_ = state.array("meta_b", (0,) if mean else ("models",))
        metas = state.objects("base_meta", n)
        for j, base in enumerate(self.bases_):
            base._set_xy_state(state.sub(f"base{j}/", metas[j], f"state.base_meta[{j}]"))
