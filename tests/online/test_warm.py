"""A warm-started bandit starts with its artifact's choices."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from polyroute.dataset import RoutingDataset
from polyroute.online import (
    FeatureMaker,
    LinearThompson,
    LinUCB,
    Reward,
    StaticRouter,
    Stream,
    artifact_priors,
    replay,
)
from polyroute.routers.artifact import load_router


@pytest.mark.parametrize("cls", [LinUCB, LinearThompson])
@pytest.mark.parametrize("w", [3e-3, np.inf])
def test_first_choices_are_the_artifacts(
    cls: type[LinUCB], w: float, artifact: Path, dcrouter_slices: tuple[RoutingDataset, ...]
) -> None:
    data = dcrouter_slices[1]
    quality, cost = artifact_priors(load_router(artifact), data.prompts, data.models, "test")
    features = FeatureMaker(dim=8)
    stream = Stream(data, features.transform(data.prompts), quality, cost)
    static = replay(StaticRouter(data.models, Reward(w)), stream).picks
    fresh = cls(data.models, features.width, reward=Reward(w), warm_start=True, seed=0)
    first = 19  # the 5 % exploration budget allows a first exploring pick at the 20th choice
    before_feedback = [fresh.choose(stream.context(i)).model for i in range(first)]
    assert before_feedback == static[:first].tolist()
    bandit = cls(data.models, features.width, reward=Reward(w), warm_start=True, seed=0)
    warm = replay(bandit, stream).picks
    assert warm[0] == static[0]
    assert (warm[:first] == static[:first]).mean() >= 0.6  # feedback corrects near-ties early


def test_greedy_warm_bandit_without_feedback_is_the_artifact(
    artifact: Path, dcrouter_slices: tuple[RoutingDataset, ...]
) -> None:
    data = dcrouter_slices[1]
    quality, cost = artifact_priors(load_router(artifact), data.prompts, data.models, "test")
    stream = Stream(data, np.ones((len(data), 1)), quality, cost)
    bandit = LinUCB(data.models, 1, reward=Reward(3e-3), warm_start=True, exploration_budget=0)
    picks = [bandit.choose(stream.context(i)).model for i in range(len(data))]
    static = replay(StaticRouter(data.models, Reward(3e-3)), stream).picks
    assert np.array_equal(picks, static)
