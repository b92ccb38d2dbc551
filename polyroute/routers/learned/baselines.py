"""Reference routers for reports: random, cheapest, best single model, and the oracle.

They read no prompt text.  ``random`` predicts a seeded uniform quality per
(prompt, model); ``cheapest`` predicts 1 for the model with the lowest mean
training cost and 0 elsewhere; ``best-single`` predicts 1 for the model with the
highest mean training score and 0 elsewhere (so at w = inf it always picks it).
The ``oracle`` is a reference only: :meth:`OracleRouter.predict_dataset` returns
the true scores of the rows it is judged on; its ``predict(prompts)`` falls back
to the training scores of known prompts and the training mean otherwise.
"""

from __future__ import annotations

import hashlib

import numpy as np

from polyroute.dataset import Matrix, RoutingDataset
from polyroute.routers._artifact_state import SavedState
from polyroute.routers.base import Arrays, JSONDict, LearnedRouter


class _IndicatorRouter(LearnedRouter):
    """Predicts 1 for one model chosen at fit time, 0 for the others."""

    needs_text = False
    choice_: int

    def _predict(self, prompts: list[str]) -> Matrix:
        out = np.zeros((len(prompts), len(self.models_)))
        out[:, self.choice_] = 1.0
        return out

    def _get_state(self) -> tuple[JSONDict, Arrays]:
        return {"choice": self.choice_}, {}

    def _set_state(self, state: SavedState) -> None:
        models = state.dim("models")
        what = f" (an index into the manifest's {models} models)"
        self.choice_ = state.integer("choice", low=0, high=models, what=what)


class CheapestRouter(_IndicatorRouter):
    def _fit(self, dataset: RoutingDataset) -> None:
        self.choice_ = int(np.argmin(dataset.costs.mean(axis=0)))


class BestSingleRouter(_IndicatorRouter):
    def _fit(self, dataset: RoutingDataset) -> None:
        self.choice_ = int(np.argmax(dataset.scores.mean(axis=0)))


class RandomRouter(LearnedRouter):
    """Uniform random qualities, deterministic per (seed, prompt)."""

    needs_text = False

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed

    def _fit(self, dataset: RoutingDataset) -> None:
        return None

    def _predict(self, prompts: list[str]) -> Matrix:
        rows = []
        for p in prompts:
            h = hashlib.sha256(f"{self.seed}\x00{p}".encode()).digest()
            rng = np.random.default_rng(int.from_bytes(h[:8], "little"))
            rows.append(rng.random(len(self.models_)))
        return np.asarray(rows)

    def _get_state(self) -> tuple[JSONDict, Arrays]:
        return {}, {}

    def _set_state(self, state: SavedState) -> None:
        return None


class OracleRouter(LearnedRouter):
    """The best possible choice in hindsight (reads the true scores; a reference only)."""

    needs_text = False
    prompts_: tuple[str, ...]
    scores_: Matrix

    def _fit(self, dataset: RoutingDataset) -> None:
        self.prompts_ = tuple(dataset.prompts)
        self.scores_ = np.asarray(dataset.scores, dtype=np.float64)

    def predict_dataset(self, dataset: RoutingDataset) -> Matrix:
        self._check_fitted()
        return np.asarray(dataset.scores, dtype=np.float64)

    def _predict(self, prompts: list[str]) -> Matrix:
        index = {p: i for i, p in enumerate(self.prompts_)}
        mean = self.scores_.mean(axis=0)
        return np.asarray([self.scores_[index[p]] if p in index else mean for p in prompts])

    def _get_state(self) -> tuple[JSONDict, Arrays]:
        return {}, {"prompts": np.array(self.prompts_, dtype=np.str_), "scores": self.scores_}

    def _set_state(self, state: SavedState) -> None:
        self.prompts_ = tuple(str(p) for p in state.array("prompts", ("rows",), np.str_))
        self.scores_ = state.array("scores", ("rows", "models"))
