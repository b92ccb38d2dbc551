"""``--router auto``: choose a router and its hyperparameters by k-fold CV on the training data.

Recipe (nothing is tuned to a particular dataset):

1. Encode the training prompts once (``encoder``, default MiniLM + TF-IDF).
   Encoding is **not** part of the time budget: a cold embedding cache must not
   change which router is chosen.
2. Score every candidate by out-of-fold predictions (``folds``-fold CV) and AIQ
   (the mean of the cost-quality envelope over the single models' cost range;
   see ``_curve``).  The first configuration of every family in
   :data:`CANDIDATES` is **always** tried (the one-cluster prior, knn,
   clusters, mf, logistic, mlp); further configurations are tried while
   ``time_budget_s`` (counted from the end of encoding) lasts, and the ones the
   budget cut are recorded in ``skipped_`` (the CLI prints them, the manifest
   keeps them).
3. Score a stacked router over the best configuration of every family, by a
   second-level CV of its meta-learner on those out-of-fold predictions.
4. **Do no harm**: the best candidate is saved only if its gain over the single
   models (one model for every prompt) in quality at matched cost stays
   positive at the lower end (``guard_quantile``) of a cross-fitted interval:
   over random halvings of the rows, the option for each cost level is chosen
   on one half and judged on the other.  (AIQ alone picks the willingness to
   pay on the rows it judges, which flatters a router that only fits noise.)
   Otherwise the one-cluster prior (each model's mean quality: the single
   model by willingness to pay) is saved, and ``decision_`` says why.
5. Refit the chosen one on all rows (a stack reuses the out-of-fold predictions).

Fitted attributes: ``best_`` (the chosen, fitted router), ``best_name_``,
``oof_`` (the chosen one's out-of-fold predictions), ``cv_results_`` (list of
``{"router", "params", "aiq", "seconds"}``), ``skipped_``, ``decision_`` and
``encode_s_``.  Saving an ``AutoRouter`` saves ``best_`` (see
:meth:`artifact_router`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from polyroute import curves
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


PRIOR: tuple[str, dict[str, Any]] = ("cluster", {"n_clusters": 1})
# random halvings of the rows for the do-no-harm check
GUARD_SPLITS = 40


class AutoRouter(LearnedRouter):
    """Model selection by cross-validation (see the module docstring)."""

    best_: LearnedRouter
    best_name_: str
    oof_: Matrix
    cv_results_: list[JSONDict]
    skipped_: list[JSONDict]
    decision_: JSONDict
    encode_s_: float

    def __init__(
        self,
        encoder: str = "minilm+tfidf",
        folds: int = 5,
        time_budget_s: float = 240.0,
        seed: int = 0,
        guard_quantile: float = 0.1,
    ) -> None:
        self.encoder = encoder
        self.folds = folds
        self.time_budget_s = time_budget_s
        self.seed = seed
        self.guard_quantile = guard_quantile

    def _fit(self, dataset: RoutingDataset) -> None:
        t_encode = time.monotonic()
        encoder = make_encoder(self.encoder).fit(dataset.prompts)
        x = features(encoder, dataset.prompts)
        self.encode_s_ = round(time.monotonic() - t_encode, 2)
        start = time.monotonic()  # the budget starts here: encoding never cuts candidates
        y, costs = dataset.scores, dataset.costs
        scorer = _Scorer(y, costs, self.cost_model_.predict(dataset.prompts))
        k = max(2, min(self.folds, len(dataset)))
        splits = kfold_indices(len(dataset), k, self.seed)
        results: list[JSONDict] = []
        self.skipped_ = []
        best_oof: dict[str, tuple[float, dict[str, Any], Matrix]] = {}
        prior_oof = np.zeros_like(y)
        tried: set[str] = set()
        for family, params in CANDIDATES:
            first_of_family = family not in tried
            if not first_of_family and time.monotonic() - start > 0.45 * self.time_budget_s:
                self.skipped_.append({"router": family, "params": params})
                continue
            tried.add(family)
            t0 = time.monotonic()
            oof = np.zeros_like(y)
            for train, test in splits:
                base = make_base(family, params)
                base._fit_xy(x[train], y[train], costs[train])
                oof[test] = base._predict_x(x[test])
            score = scorer.aiq(oof)
            results.append(_result(family, params, score, t0))
            if (family, params) == PRIOR:
                prior_oof = oof
                continue  # the prior competes in the guard, not as a family
            if family not in best_oof or score > best_oof[family][0]:
                best_oof[family] = (score, params, oof)
        stack, stack_oof = self._score_stack(best_oof, x, scorer, k, results)
        self.cv_results_ = results
        win = self._guard(results, best_oof, stack_oof, prior_oof, scorer)
        self._refit_best(dataset, encoder, x, stack=stack, best_oof=best_oof, win=win)

    def _score_stack(
        self,
        best_oof: dict[str, tuple[float, dict[str, Any], Matrix]],
        x: Array,
        scorer: _Scorer,
        k: int,
        results: list[JSONDict],
    ) -> tuple[StackRouter | None, Matrix]:
        y = scorer.y
        families = sorted(best_oof)
        if len(families) < 2:
            return None, np.zeros_like(y)
        t0 = time.monotonic()
        stack = StackRouter(
            encoder=self.encoder,
            bases=families,
            base_params={f: best_oof[f][1] for f in families},
            folds=k,
            seed=self.seed,
        )
        stack_oof = stack.cv_meta([best_oof[f][2] for f in families], x, y, self.seed + 1)
        results.append(_result("stack", stack.get_params(), scorer.aiq(stack_oof), t0))
        return stack, stack_oof

    def _guard(
        self,
        results: list[JSONDict],
        best_oof: dict[str, tuple[float, dict[str, Any], Matrix]],
        stack_oof: Matrix,
        prior_oof: Matrix,
        scorer: _Scorer,
    ) -> JSONDict:
        """The best candidate if choosing among the candidates beats the single models beyond
        the noise of the rows (:meth:`_Scorer.honest_gains`), else the prior."""
        prior = next(r for r in results if (r["router"], r["params"]) == PRIOR)
        others = [r for r in results if r is not prior]
        best = max(others, key=lambda r: float(r["aiq"]), default=prior)
        oof = (
            stack_oof
            if best["router"] == "stack"
            else best_oof.get(str(best["router"]), (0.0, {}, prior_oof))[2]
        )
        candidates = [v[2] for v in best_oof.values()]
        if any(r["router"] == "stack" for r in results):
            candidates.append(stack_oof)
        low, mid, high = scorer.honest_gains(
            candidates or [prior_oof], self.guard_quantile, self.seed
        )
        kept = best is not prior and low > 0.0
        self.decision_ = {
            "chosen": str(best["router"]) if kept else "prior",
            "best_candidate": str(best["router"]),
            "gain_over_single_models": round(mid, 6),
            "gain_interval": [round(low, 6), round(high, 6)],
            "interval_quantiles": [self.guard_quantile, 1 - self.guard_quantile],
            "why": (
                "the best candidate beats the single models beyond the noise of the rows"
                if kept
                else "no candidate beat the single models beyond the noise of the rows: "
                "the prior (each model's mean quality; the model by willingness to pay) is saved"
            ),
        }
        self.oof_ = oof if kept else prior_oof
        return best if kept else prior

    def _refit_best(
        self,
        dataset: RoutingDataset,
        encoder: Encoder,
        x: Array,
        *,
        stack: StackRouter | None,
        best_oof: dict[str, tuple[float, dict[str, Any], Matrix]],
        win: JSONDict,
    ) -> None:
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
        info = {
            "selected_by": "auto",
            "selected": self.best_name_,
            "decision": self.decision_,
            "cv": self.cv_results_,
            "skipped_by_time_budget": self.skipped_,
            "encode_s": self.encode_s_,
        }
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


@dataclass(frozen=True)
class _Scorer:
    """Scores predicted qualities against the true scores and costs of the training rows."""

    y: Matrix
    costs: Matrix
    est: Matrix

    def aiq(self, predicted: Matrix) -> float:
        return aiq(predicted, self.y, self.costs, self.est)

    def _outcomes(self, predicted: Matrix) -> tuple[Matrix, Matrix]:
        """True cost and score of the choice on every row (columns), for every price of
        quality the chooser switches at (rows): a choice depends on its row alone, so
        any split of the rows reuses them."""
        lams = curves.lambda_grid(predicted, self.est)
        score, cost = curves.selections(predicted, self.est, self.y, self.costs, lams)
        return cost, score

    def honest_gains(
        self, candidates: list[Matrix], quantile: float, seed: int
    ) -> tuple[float, float, float]:
        """How much choosing among ``candidates`` (out-of-fold predictions) gains over the
        single models in quality at matched cost, **cross-fitted and nested**: over random
        halvings of the rows, one half picks the candidate and, for every cost level,
        its mix of willingness-to-pay values (a model, for the single models); the other
        half judges both.  Returns the ``quantile``, median and ``1 - quantile`` points.

        AIQ on the rows that chose the winner flatters it twice (the envelope picks the
        willingness to pay, the search picks the candidate, on the rows it judges): a
        router fitted to noise "beat" the single models by 3-7 points that way."""
        grid = np.linspace(self.costs.mean(axis=0).min(), self.costs.mean(axis=0).max(), 200)
        options = [self._outcomes(c) for c in candidates]
        singles = (self.costs.T, self.y.T)  # option = always that model
        rng = np.random.default_rng(seed + 7)
        n = self.y.shape[0]
        gains = []
        for _ in range(GUARD_SPLITS):
            order = rng.permutation(n)
            a, b = order[: n // 2], order[n // 2 :]
            gain = 0.0
            for fit, judge in ((a, b), (b, a)):
                fitted = [_hull_value(o, grid, fit, fit) for o in options]
                best = options[int(np.argmax(fitted))]
                gain += _hull_value(best, grid, fit, judge) - _hull_value(singles, grid, fit, judge)
            gains.append(gain / 2)
        low, mid, high = (float(v) for v in np.quantile(gains, [quantile, 0.5, 1 - quantile]))
        return low, mid, high


def _hull_value(
    outcomes: tuple[Matrix, Matrix],
    grid: npt.NDArray[np.float64],
    fit: npt.NDArray[np.intp],
    judge: npt.NDArray[np.intp],
) -> float:
    """Mean over the cost grid of the quality, judged on the ``judge`` rows, of the mix of
    options that the ``fit`` rows' envelope (non-decreasing upper concave hull, as in
    ``docs/metrics.md``: two options mixed at random per request) picks for that cost."""
    cost, score = outcomes
    c_fit, q_fit = cost[:, fit].mean(axis=1), score[:, fit].mean(axis=1)
    q_judge = score[:, judge].mean(axis=1)
    hull = curves.envelope_indices(c_fit, q_fit)
    hc, hq = c_fit[hull], q_judge[hull]
    k = np.searchsorted(hc, grid, side="right") - 1
    k_lo = np.clip(k, 0, len(hull) - 1)
    k_hi = np.clip(k + 1, 0, len(hull) - 1)
    span = hc[k_hi] - hc[k_lo]
    lam = np.where(span > 0, (grid - hc[k_lo]) / np.where(span > 0, span, 1.0), 0.0)
    value = (1 - lam) * hq[k_lo] + lam * hq[k_hi]
    return float(np.where(k >= 0, value, 0.0).mean())  # below the cheapest: cannot run
