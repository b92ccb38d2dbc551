"""Behaviour of the chooser, the cost model, the baselines and each learned router."""

from __future__ import annotations

import math

import numpy as np
import pytest

from polyroute.dataset import RoutingDataset
from polyroute.errors import ConfigError, NotFittedError
from polyroute.routers.base import CostModel, choose
from polyroute.routers.learned import get_router
from polyroute.routers.learned.auto import AutoRouter
from polyroute.routers.learned.baselines import OracleRouter
from polyroute.routers.learned.cluster import ClusterRouter
from polyroute.routers.learned.knn import KNNRouter

Q = np.array([[0.9, 0.5, 0.2], [0.3, 0.35, 0.34]])
C = np.array([[3.0, 1.0, 0.5], [3.0, 1.0, 0.5]])


def test_choose_pure_quality_and_willingness_to_pay() -> None:
    assert choose(Q, C, math.inf).tolist() == [0, 1]
    # w = 10: utilities row 0: 0.6, 0.4, 0.15 -> 0; row 1: 0.0, 0.25, 0.29 -> 2
    assert choose(Q, C, 10.0).tolist() == [0, 2]
    assert choose(Q, C, 1e-9).tolist() == [2, 2]  # nearly free money: cheapest


def test_choose_ties_go_to_the_cheaper_model() -> None:
    assert choose(np.array([[0.5, 0.5]]), np.array([[2.0, 1.0]])).tolist() == [1]


def test_choose_constraints() -> None:
    assert choose(Q, C, math.inf, allowed=[False, True, True]).tolist() == [1, 1]
    assert choose(Q, C, math.inf, max_cost_usd=1.0).tolist() == [1, 1]
    assert choose(Q, C, math.inf, max_cost_usd=0.1).tolist() == [2, 2]  # none fits: cheapest
    with pytest.raises(ConfigError):
        choose(Q, C, math.inf, allowed=[False, False, False])
    with pytest.raises(ConfigError):
        choose(Q, C, 0.0)


def test_cost_model_recovers_linear_prices(toy: RoutingDataset) -> None:
    model = CostModel.fit(toy)
    np.testing.assert_allclose(model.predict(toy.prompts), toy.costs, rtol=1e-6)
    assert model.predict(["x" * 1000])[0, 1] > model.predict(["x"])[0, 1]


@pytest.mark.parametrize("name", ["knn", "logistic", "mlp", "mf", "cluster", "stack"])
def test_learned_routers_tell_the_two_prompt_kinds_apart(name: str, toy: RoutingDataset) -> None:
    params = {"encoder": "tfidf"}
    if name == "cluster":
        params["n_clusters"] = 4  # type: ignore[assignment]
    router = get_router(name)(**params).fit(toy)
    pred = router.predict(
        ["compute the integral of 12 x squared plus 7 dx please", "hello there friend number 8"]
    )
    assert pred[0, 1] > pred[0, 0] + 0.3  # maths: only the big model
    assert pred[1, 0] > 0.6  # greeting: the small one is fine
    picks = choose(pred, router.estimate_costs(["a" * 50, "b" * 50]), 5e-5)  # 0.27 per gap
    assert picks.tolist() == [1, 0]


def test_knn_tunes_k_and_honours_a_fixed_k(toy: RoutingDataset) -> None:
    assert KNNRouter(encoder="tfidf").fit(toy).k_ in (5, 10, 20, 40, 80)
    assert KNNRouter(encoder="tfidf", k=7).fit(toy).k_ == 7


def test_one_cluster_is_the_training_mean(toy: RoutingDataset) -> None:
    router = ClusterRouter(encoder="tfidf", n_clusters=1, prior=0.0).fit(toy)
    np.testing.assert_allclose(router.predict(["anything"])[0], toy.scores.mean(axis=0))


def test_baselines(small: RoutingDataset) -> None:
    cheapest = get_router("cheapest")().fit(small)
    best = get_router("best-single")().fit(small)
    prompts = list(small.prompts[:5])
    est = cheapest.estimate_costs(prompts)
    assert set(choose(cheapest.predict(prompts), est).tolist()) == {
        int(small.costs.mean(0).argmin())
    }
    assert set(choose(best.predict(prompts), est).tolist()) == {int(small.scores.mean(0).argmax())}
    rnd = get_router("random")(seed=3).fit(small)
    np.testing.assert_array_equal(rnd.predict(prompts), rnd.predict(prompts))


def test_oracle_reads_the_rows_it_is_judged_on(small: RoutingDataset) -> None:
    oracle = OracleRouter().fit(small.subset(range(10)))
    rows = small.subset(range(10, 30))
    np.testing.assert_array_equal(oracle.predict_dataset(rows), rows.scores)
    with pytest.raises(NotFittedError):
        OracleRouter().predict_dataset(rows)


def test_auto_reports_cv_and_picks_a_candidate(small: RoutingDataset) -> None:
    auto = AutoRouter(encoder="tfidf", folds=2, time_budget_s=3.0).fit(small)
    assert auto.cv_results_ and all("aiq" in r for r in auto.cv_results_)
    best = max(auto.cv_results_, key=lambda r: r["aiq"])
    chosen = auto.decision_["chosen"]
    # the best candidate, or the prior (the one-cluster hull) when its gain is noise
    assert (chosen, auto.best_name_) in {(best["router"], best["router"]), ("prior", "cluster")}
    assert auto.oof_.shape == small.scores.shape
    router, info = auto.artifact_router()
    assert router is auto.best_ and info["selected_by"] == "auto"


def test_knn_without_text_features_is_the_plain_embedding_baseline(
    small: RoutingDataset, tmp_path: object
) -> None:
    from pathlib import Path

    from polyroute.routers.artifact import load_router, save_router

    plain = KNNRouter(encoder="tfidf", k=10, text_features=False).fit(small)
    rich = KNNRouter(encoder="tfidf", k=10).fit(small)
    prompts = list(small.prompts[:20])
    assert not np.allclose(plain.predict(prompts), rich.predict(prompts))
    assert isinstance(tmp_path, Path)
    save_router(plain, tmp_path / "plain")
    loaded = load_router(tmp_path / "plain")
    assert loaded.get_params()["text_features"] is False
    assert np.allclose(loaded.predict(prompts), plain.predict(prompts))


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("knn:k=abc", "k='abc': expected int | None"),
        ("knn:kk=3", "unknown hyperparameter 'kk' for KNNRouter"),
        ("logistic:l2=[1]", "l2=[1]: expected float"),
    ],
)
def test_bad_hyperparameters_are_config_errors(spec: str, message: str) -> None:
    from polyroute.eval.evaluate import make_router

    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("|", r"\|")):
        make_router(spec)


def test_hyperparameters_are_coerced_to_their_types() -> None:
    from polyroute.eval.evaluate import make_router

    router = make_router("knn:k=7:weighting=uniform")
    assert router.get_params()["k"] == 7  # type: ignore[attr-defined]
