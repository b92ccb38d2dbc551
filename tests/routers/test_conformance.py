"""One conformance suite over every router in the learned-router registry (sklearn style)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from routers.learned_fixtures import FAST

from polyroute.dataset import RoutingDataset
from polyroute.errors import ConfigError, NotFittedError
from polyroute.routers.artifact import load_router, save_router
from polyroute.routers.base import LearnedRouter, choose
from polyroute.routers.learned import ROUTERS, get_router

NAMES = ROUTERS.names()


def make(name: str) -> LearnedRouter:
    return get_router(name)(**FAST.get(name, {}))


@pytest.fixture(scope="module", params=NAMES)
def fitted(request: pytest.FixtureRequest, small: RoutingDataset) -> tuple[str, LearnedRouter]:
    name = request.param
    router = make(name)
    assert router.fit(small) is router
    return name, router


def test_registry_lists_every_family() -> None:
    expected = {"auto", "cluster", "knn", "logistic", "mf", "mlp", "stack"}
    expected |= {"random", "cheapest", "best-single", "oracle"}
    assert expected <= set(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_init_only_stores_hyperparameters(name: str) -> None:
    router = make(name)
    params = router.get_params()
    assert set(vars(router)) == set(params)
    assert not any(k.endswith("_") for k in vars(router))
    clone = type(router)(**params)  # get_params round-trips through __init__
    assert clone.get_params() == params


@pytest.mark.parametrize("name", NAMES)
def test_predict_before_fit_raises(name: str) -> None:
    with pytest.raises(NotFittedError):
        make(name).predict(["hello"])


def test_predict_shape_and_range(
    fitted: tuple[str, LearnedRouter], holdout: RoutingDataset
) -> None:
    _, router = fitted
    pred = router.predict(holdout.prompts)
    assert pred.shape == (len(holdout), len(holdout.models))
    assert np.isfinite(pred).all()
    assert (pred >= 0).all() and (pred <= 1).all()
    assert router.predict([]).shape == (0, len(holdout.models))
    est = router.estimate_costs(holdout.prompts)
    assert est.shape == pred.shape and (est >= 0).all()


def test_artifact_round_trip_gives_identical_predictions(
    fitted: tuple[str, LearnedRouter], holdout: RoutingDataset, tmp_path: Path
) -> None:
    _, router = fitted
    save_router(router, tmp_path / "art")
    loaded = load_router(tmp_path / "art")
    prompts = list(holdout.prompts[:40])
    np.testing.assert_allclose(loaded.predict(prompts), router.predict(prompts), atol=1e-6)
    np.testing.assert_allclose(loaded.estimate_costs(prompts), router.estimate_costs(prompts))
    assert loaded.models_ == router.models_


def test_chooser_respects_constraints(
    fitted: tuple[str, LearnedRouter], holdout: RoutingDataset
) -> None:
    _, router = fitted
    pred = router.predict(holdout.prompts)
    est = router.estimate_costs(holdout.prompts)
    allowed = np.zeros(len(holdout.models), dtype=bool)
    allowed[[1, 3]] = True
    picks = choose(pred, est, 1e-3, allowed=allowed)
    assert set(picks.tolist()) <= {1, 3}
    cap = float(np.median(est[:, 3]))
    capped = choose(pred, est, float("inf"), max_cost_usd=cap)
    chosen_cost = est[np.arange(len(holdout)), capped]
    assert (chosen_cost <= cap).all()


@pytest.mark.parametrize("name", NAMES)
def test_tiny_datasets_fit_or_fail_clearly(name: str, small: RoutingDataset) -> None:
    router = make(name).fit(small.subset([0, 1, 2]))
    assert router.predict(["anything"]).shape == (1, len(small.models))
    with pytest.raises(ConfigError, match="at least 2 rows"):
        make(name).fit(small.subset([0]))
