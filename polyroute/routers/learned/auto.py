"""``--router auto``: choose a router and its hyperparameters by k-fold CV on the training data.

Recipe (nothing is tuned to a particular dataset):

1. Encode the training prompts once (``encoder``, default MiniLM + TF-IDF).
2. For each candidate in :data:`CANDIDATES` (cheap first), collect out-of-fold
   predictions by ``folds``-fold CV and score them by AIQ (the mean of the
   cost-quality envelope over the single models' cost range; see ``_curve``).
   The one-cluster candidate is the constant prior: the single models' hull.
   Candidates stop being tried once ``time_budget_s * 0.45`` has elapsed.
3. Score a stacked router over the best configuration of every family, by a
   second-level CV of its meta-learner on those out-of-fold predictions.
4. Refit the winner on all rows (a stack reuses the out-of-fold predictions).

Fitted attributes: ``best_`` (the chosen, fitted router), ``best_name_``,
``oof_`` (the winner's out-of-fold predictions) and ``cv_results_`` (list of
``{"router", "params", "aiq", "seconds"}``).
Saving an ``AutoRouter`` saves ``best_`` (see :meth:`artifact_router`).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from polyroute.dataset import Matrix, RoutingDataset
from polyroute.embed import Array, Encoder, make_encoder
from polyroute.errors import ConfigError
from polyroute.routers._artifact_state import SavedState
from polyroute.routers.base import Arrays, JSONDict, LearnedRouter
from polyroute.routers.learned._curve import aiq
from polyroute.routers.learned._features import features
from polyroute.routers.learned._optim import kfold_indices
from polyroute.routers.learned.stack import StackRouter, make_base

CANDIDATES: tuple[tuple[str, dict[str, Any]], ...] = (
    ("cluster", {"n_clusters": 1}),
    ("knn", {}),
    ("cluster", {"n_clusters": 32}),
    ("cluster", {"n_clusters": 16}),
    ("cluster", {"n_clusters": 64}),
    ("mf", {}),
    ("logistic", {"l2": 1e-2}),
    ("logistic", {"l2": 1e-3}),
    ("mlp", {}),
    ("mlp", {"l2": 1e-2}),
    ("knn", {"weighting": "uniform"}),
)


class AutoRouter(LearnedRouter):
    """Model selection by cross-validation (see the module docstring)."""

    best_: LearnedRouter
    best_name_: str
    oof_: Matrix
    cv_results_: list[JSONDict]

    def __init__(
        self,
        encoder: str = "minilm+tfidf",
        folds: int = 5,
        time_budget_s: float = 240.0,
        seed: int = 0,
    ) -> None:
        self.encoder = encoder
        self.folds = folds
        self.time_budget_s = time_budget_s
        self.seed = seed

    def _fit(self, dataset: RoutingDataset) -> None:
        start = time.monotonic()
        encoder = make_encoder(self.encoder).fit(dataset.prompts)
        x = features(encoder, dataset.prompts)
        y, costs = dataset.scores, dataset.costs
        est = self.cost_model_.predict(dataset.prompts)
        k = max(2, min(self.folds, len(dataset)))
        splits = kfold_indices(len(dataset), k, self.seed)
        results: list[JSONDict] = []
        best_oof: dict[str, tuple[float, dict[str, Any], Matrix]] = {}
        for family, params in CANDIDATES:
            if results and time.monotonic() - start > 0.45 * self.time_budget_s:
                break
            t0 = time.monotonic()
            oof = np.zeros_like(y)
            for train, test in splits:
                base = make_base(family, params)
                base._fit_xy(x[train], y[train], costs[train])
                oof[test] = base._predict_x(x[test])
            score = aiq(oof, y, costs, est)
            results.append(_result(family, params, score, t0))
            if family not in best_oof or score > best_oof[family][0]:
                best_oof[family] = (score, params, oof)
        families = [f for f in sorted(best_oof) if best_oof[f][1].get("n_clusters") != 1]
        stack: StackRouter | None = None
        stack_oof = np.zeros_like(y)
        if len(families) >= 2:
            t0 = time.monotonic()
            stack = StackRouter(
                encoder=self.encoder,
                bases=families,
                base_params={f: best_oof[f][1] for f in families},
                folds=k,
                seed=self.seed,
            )
            oofs = [best_oof[f][2] for f in families]
            stack_oof = stack.cv_meta(oofs, x, y, self.seed + 1)
            score = aiq(stack_oof, y, costs, est)
            results.append(_result("stack", stack.get_params(), score, t0))
        self.cv_results_ = results
        win = max(results, key=lambda r: float(r["aiq"]))
        self.oof_ = stack_oof if win["router"] == "stack" else best_oof[str(win["router"])][2]
        self._refit_best(dataset, encoder, x, stack, best_oof)

    def _refit_best(
        self,
        dataset: RoutingDataset,
        encoder: Encoder,
        x: Array,
        stack: StackRouter | None,
        best_oof: dict[str, tuple[float, dict[str, Any], Matrix]],
    ) -> None:
        win = max(self.cv_results_, key=lambda r: float(r["aiq"]))
        self.best_name_ = str(win["router"])
        if self.best_name_ == "stack" and stack is not None:
            stack.fit_from_oof(dataset, encoder, x, [best_oof[f][2] for f in stack.bases])
            self.best_ = stack
            return
        router = make_base(self.best_name_, dict(win["params"]))
        router.set_params(encoder=self.encoder)
        self.best_ = router.fit(dataset)

    def _predict(self, prompts: list[str]) -> Matrix:
        return self.best_.predict(prompts)

    def artifact_router(self) -> tuple[LearnedRouter, JSONDict]:
        """The router to save in place of this one, and the selection report."""
        self._check_fitted()
        info = {"selected_by": "auto", "selected": self.best_name_, "cv": self.cv_results_}
        return self.best_, info

    def _get_state(self) -> tuple[JSONDict, Arrays]:
        raise ConfigError("auto is saved as the router it selected; use save_router()")

    def _set_state(self, state: SavedState) -> None:
        raise ConfigError("an artifact never holds 'auto'; it holds the router auto selected")


def _result(family: str, params: dict[str, Any], score: float, t0: float) -> JSONDict:
    return {
        "router": family,
        "params": params,
        "aiq": round(score, 6),
        "seconds": round(time.monotonic() - t0, 2),
    }
