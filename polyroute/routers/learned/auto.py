"""``--router auto``: choose a router and its hyperparameters by k-fold CV on the training data.

Recipe (nothing is tuned to a particular dataset):

1. Encode the training prompts once (``encoder``, default ``static+tfidf``: the
   token table distilled from MiniLM beside TF-IDF, about 0.2 points of AIQ under
   ``minilm+tfidf`` on dcrouter at a hundredth of its CPU per prompt, so the gateway
   serves the artifact at hundreds of requests a second; ``minilm+tfidf`` is the
   accurate choice).  Encoding is **not** part of the time budget: a cold embedding
   cache must not change which router is chosen.
2. Score every candidate by out-of-fold predictions and AIQ (the mean of the
   cost-quality envelope over the single models' cost range; see ``_curve``),
   twice when the rows name at least :data:`MIN_GROUPS` tasks: over ``folds``
   row folds (new prompts of known tasks) and over ``folds`` folds of held-out
   *tasks* (a shifted mix).  The criterion is the mean of the two, so a router
   that only memorises the tasks it saw does not win.  Besides the full
   features, knn, logistic and clusters are also tried on the prompt's meaning
   alone (:data:`~._features.SEMANTIC`: MiniLM, or the static table for the
   ``static`` encoders; no TF-IDF, no surface features), the view that holds up
   best under a shift.  The first
   configuration of every family in :data:`CANDIDATES` is **always** tried (the
   one-cluster prior, knn, logistic, clusters, mf, mlp); further configurations
   are tried while ``time_budget_s`` (counted from the end of encoding) lasts,
   and the ones the budget cut are recorded in ``skipped_`` (the CLI prints
   them, the manifest keeps them).
3. Score a stacked router over the best full-feature configuration of every
   family, by a second-level CV of its meta-learner on those out-of-fold
   predictions (over the same row and task folds).
4. **Do no harm**: the best candidate is saved only if its gain over the single
   models (one model for every prompt) in quality at matched cost stays
   positive at the lower end (``guard_quantile``) of a cross-fitted interval:
   over random halvings of the rows, the option for each cost level is chosen
   on one half and judged on the other.  (AIQ alone picks the willingness to
   pay on the rows it judges, which flatters a router that only fits noise.)
   Otherwise the one-cluster prior (each model's mean quality: the single
   model by willingness to pay) is saved, and ``decision_`` says why.
5. **Shrinkage** (:mod:`polyroute.routers.shrink`): departures of a prediction
   from the model's mean smaller than ``factor x`` their out-of-fold spread
   are treated as noise; the factor (:data:`SHRINK_FACTORS`, 0 = none) is
   chosen by the same criterion and recorded in ``decision_["shrinkage"]``.
6. Refit the chosen one on all rows (a stack reuses the out-of-fold predictions).

Fitted attributes: ``best_`` (the chosen, fitted router), ``best_name_``,
``oof_`` (the chosen one's out-of-fold predictions over row folds, shrunk as saved),
``cv_results_`` (list of ``{"router", "params", "aiq", "aiq_tasks_held_out"
(when tasks were held out), "score", "seconds"}``), ``skipped_``, ``decision_`` and
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
from polyroute.routers.learned._features import (
    SEMANTIC,
    features,
    is_semantic,
    semantic,
    view,
)
from polyroute.routers.learned._optim import Split, group_kfold_indices, kfold_indices
from polyroute.routers.learned.stack import StackRouter, make_base
from polyroute.routers.shrink import Shrinkage

CANDIDATES: tuple[tuple[str, dict[str, Any]], ...] = (
    ("cluster", {"n_clusters": 1}),
    ("knn", SEMANTIC),
    ("knn", {}),
    ("logistic", {**SEMANTIC, "l2": 1e-2}),
    ("cluster", {"n_clusters": 32}),
    ("mf", {}),
    ("mlp", {}),
    ("logistic", {"l2": 1e-3}),
    ("logistic", {**SEMANTIC, "l2": 1e-3}),
    ("cluster", {"n_clusters": 16}),
    ("cluster", {**SEMANTIC, "n_clusters": 16}),
    ("cluster", {"n_clusters": 64}),
    ("logistic", {"l2": 1e-2}),
    ("mlp", {"l2": 1e-2}),
    ("knn", {"weighting": "uniform"}),
)


PRIOR: tuple[str, dict[str, Any]] = ("cluster", {"n_clusters": 1})
# random halvings of the rows for the do-no-harm check
GUARD_SPLITS = 40
#: the fewest distinct tasks for which holding tasks out says something (with two,
#: each task is judged by a router that saw only the other one)
MIN_GROUPS = 3
#: multiples of the out-of-fold spread of departures tried as the shrinkage threshold
SHRINK_FACTORS = (0.0, 0.25, 0.5, 1.0)


@dataclass
class _Candidate:
    """One configuration's out-of-fold predictions: over rows, and over tasks when known."""

    family: str
    params: dict[str, Any]
    score: float
    rows: Matrix
    groups: Matrix | None


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
        encoder: str = "static+tfidf",
        folds: int = 5,
        time_budget_s: float = 900.0,
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
        folds = _Folds(
            kfold_indices(len(dataset), k, self.seed), self._group_splits(dataset), scorer
        )
        results: list[JSONDict] = []
        self.skipped_ = []
        best: dict[str, _Candidate] = {}  # per family, the best configuration of every view
        prior: _Candidate | None = None
        tried: set[str] = set()
        for family, listed in CANDIDATES:
            params = {**listed, **semantic(self.encoder)} if is_semantic(listed) else listed
            xv = view(x, self.encoder, params)
            if xv is None:
                continue  # the encoder has no MiniLM half to read the meaning from
            first_of_family = family not in tried
            if not first_of_family and time.monotonic() - start > 0.45 * self.time_budget_s:
                self.skipped_.append({"router": family, "params": params})
                continue
            tried.add(family)
            t0 = time.monotonic()
            cand = folds.score(family, params, xv)
            results.append(_result(cand, scorer, t0))
            if (family, params) == PRIOR:
                prior = cand
                continue  # the prior competes in the guard, not as a family
            key = family + (" (meaning only)" if is_semantic(params) else "")
            if key not in best or cand.score > best[key].score:
                best[key] = cand
        assert prior is not None  # the prior is the first candidate: never cut
        stack = self._score_stack(best, x, scorer, folds, results)
        self.cv_results_ = results
        win = self._guard(results, best, stack, prior, scorer)
        shrinkage = self._choose_shrinkage(win, prior, folds)
        self._refit_best(dataset, encoder, x, win=win, stack=stack, best=best)
        self.best_.shrinkage_ = shrinkage
        if shrinkage is not None:
            self.oof_ = shrinkage.apply(self.oof_)

    def _group_splits(self, dataset: RoutingDataset) -> list[Split] | None:
        """Folds over the training rows' tasks, when there are enough of them."""
        if dataset.tasks is None:
            return None
        n_groups = len(set(dataset.tasks))
        if n_groups < MIN_GROUPS:
            return None
        return group_kfold_indices(dataset.tasks, min(self.folds, n_groups), self.seed)

    def _score_stack(
        self,
        best: dict[str, _Candidate],
        x: Array,
        scorer: _Scorer,
        folds: _Folds,
        results: list[JSONDict],
    ) -> tuple[StackRouter, _Candidate] | None:
        """A stack over the best configuration of every family (full features), scored
        by a second-level CV of its meta-learner on their out-of-fold predictions."""
        families = sorted(f for f in best if f == best[f].family)
        if len(families) < 2:
            return None
        t0 = time.monotonic()
        stack = StackRouter(
            encoder=self.encoder,
            bases=families,
            base_params={f: best[f].params for f in families},
            folds=len(folds.rows),
            seed=self.seed,
        )
        y = scorer.y
        rows = stack.cv_meta([best[f].rows for f in families], x, y, self.seed + 1)
        groups = None
        if folds.groups is not None:
            base_groups = [best[f].groups for f in families]
            groups = stack.cv_meta(
                [g for g in base_groups if g is not None], x, y, self.seed + 1, folds.groups
            )
        cand = _Candidate("stack", stack.get_params(), scorer.criterion(rows, groups), rows, groups)
        results.append(_result(cand, scorer, t0))
        return stack, cand

    def _guard(
        self,
        results: list[JSONDict],
        best: dict[str, _Candidate],
        stack: tuple[StackRouter, _Candidate] | None,
        prior: _Candidate,
        scorer: _Scorer,
    ) -> _Candidate:
        """The best candidate if choosing among the candidates beats the single models beyond
        the noise of the rows (:meth:`_Scorer.honest_gains`), else the prior."""
        candidates = list(best.values()) + ([stack[1]] if stack else [])
        top = max(candidates, key=lambda c: c.score, default=prior)
        low, mid, high = scorer.honest_gains(
            [c.rows for c in candidates] or [prior.rows], self.guard_quantile, self.seed
        )
        kept = top is not prior and low > 0.0
        by_tasks = top.groups is not None
        self.decision_ = {
            "chosen": top.family if kept else "prior",
            "best_candidate": top.family,
            "best_candidate_params": top.params,
            "criterion": (
                "mean of the AIQ over row folds and over folds of held-out tasks"
                if by_tasks
                else "AIQ over row folds (the rows name fewer than "
                f"{MIN_GROUPS} tasks: none held out)"
            ),
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
        win = top if kept else prior
        self.oof_ = win.rows
        return win

    def _choose_shrinkage(
        self, win: _Candidate, prior: _Candidate, folds: _Folds
    ) -> Shrinkage | None:
        """How far a prediction must depart from the model's mean before it counts:
        ``tau = factor x`` the spread of the out-of-fold departures, the factor in
        :data:`SHRINK_FACTORS` scored by the same criterion as the candidates (each
        fold's departures measured from the mean of the rows it was fitted on)."""
        if win is prior:
            return None
        y = folds.scorer.y
        centre = _fold_means(y, folds.rows)
        spread = (win.rows - centre).std(axis=0)
        gcentre = None if folds.groups is None else _fold_means(y, folds.groups)
        scores: dict[float, float] = {}
        for factor in SHRINK_FACTORS:
            shrink = Shrinkage(y.mean(axis=0), factor * spread)
            rows = shrink.apply(win.rows, centre)
            groups = None
            if win.groups is not None and gcentre is not None:
                groups = shrink.apply(win.groups, gcentre)
            scores[factor] = folds.scorer.criterion(rows, groups)
        factor = max(SHRINK_FACTORS, key=lambda f: (round(scores[f], 6), -f))
        self.decision_["shrinkage"] = {
            "factor": factor,
            "scores": {str(f): round(v, 6) for f, v in scores.items()},
            "why": "departures from each model's mean smaller than factor x their "
            "out-of-fold spread are treated as noise (factor chosen by the criterion)",
        }
        if factor == 0.0:
            return None
        return Shrinkage(y.mean(axis=0), factor * spread)

    def _refit_best(
        self,
        dataset: RoutingDataset,
        encoder: Encoder,
        x: Array,
        *,
        win: _Candidate,
        stack: tuple[StackRouter, _Candidate] | None,
        best: dict[str, _Candidate],
    ) -> None:
        self.best_name_ = win.family
        if stack is not None and win is stack[1]:
            router = stack[0]
            router.fit_from_oof(dataset, encoder, x, [best[f].rows for f in router.bases])
            self.best_ = router
            return
        base = make_base(win.family, dict(win.params))
        if not is_semantic(win.params):
            base.set_params(encoder=self.encoder)
        self.best_ = base.fit(dataset)

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


def _result(cand: _Candidate, scorer: _Scorer, t0: float) -> JSONDict:
    row: JSONDict = {
        "router": cand.family,
        "params": cand.params,
        "aiq": round(scorer.aiq(cand.rows), 6),
    }
    if cand.groups is not None:
        row["aiq_tasks_held_out"] = round(scorer.aiq(cand.groups), 6)
    row["score"] = round(cand.score, 6)
    row["seconds"] = round(time.monotonic() - t0, 2)
    return row


def _fold_means(y: Matrix, splits: list[Split]) -> Matrix:
    """For every row, each model's mean score over the rows its fold was fitted on."""
    out = np.zeros_like(y)
    for train, test in splits:
        out[test] = y[train].mean(axis=0)
    return out


@dataclass(frozen=True)
class _Folds:
    """The splits every candidate is scored on: rows, and tasks (None: not held out)."""

    rows: list[Split]
    groups: list[Split] | None
    scorer: _Scorer

    def score(self, family: str, params: dict[str, Any], x: Array) -> _Candidate:
        rows = self._oof(family, params, x, self.rows)
        groups = None if self.groups is None else self._oof(family, params, x, self.groups)
        return _Candidate(family, params, self.scorer.criterion(rows, groups), rows, groups)

    def _oof(self, family: str, params: dict[str, Any], x: Array, splits: list[Split]) -> Matrix:
        """Out-of-fold predictions of one configuration over ``splits``."""
        y, costs = self.scorer.y, self.scorer.costs
        out = np.zeros_like(y)
        for train, test in splits:
            base = make_base(family, params)
            base._fit_xy(x[train], y[train], costs[train])
            out[test] = base._predict_x(x[test])
        return out


@dataclass(frozen=True)
class _Scorer:
    """Scores predicted qualities against the true scores and costs of the training rows."""

    y: Matrix
    costs: Matrix
    est: Matrix

    def aiq(self, predicted: Matrix) -> float:
        return aiq(predicted, self.y, self.costs, self.est)

    def criterion(self, rows: Matrix, groups: Matrix | None) -> float:
        """What ``auto`` maximises: the AIQ over row folds, averaged with the AIQ over
        folds of held-out tasks when the rows name enough tasks."""
        if groups is None:
            return self.aiq(rows)
        return 0.5 * (self.aiq(rows) + self.aiq(groups))

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
