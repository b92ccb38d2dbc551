"""The linear bandits learn on a synthetic stream and keep exploration within budget."""

from __future__ import annotations

import numpy as np
import pytest
from online.helpers import synthetic_stream

from polyroute.errors import ConfigError
from polyroute.online import Context, LinearThompson, LinUCB, Outcome, Reward, replay


@pytest.mark.parametrize("cls", [LinUCB, LinearThompson])
def test_learns_the_best_arm_per_context(cls: type[LinUCB]) -> None:
    stream = synthetic_stream()
    bandit = cls(stream.data.models, 4, reward=Reward(1.0), seed=1)
    result = replay(bandit, stream)
    best = np.where(stream.x[:, 0] > 0, 0, 1)
    late = slice(1000, None)
    assert (result.picks[late] == best[late]).mean() > 0.9
    assert result.quality[late].mean() > 0.8  # the best single arm scores ~0.5


def test_exploration_never_exceeds_its_budget() -> None:
    stream = synthetic_stream(600)
    bandit = LinUCB(stream.data.models, 4, alpha=5.0, exploration_budget=0.1)
    explored = 0
    for i in range(len(stream.data)):
        choice = bandit.choose(stream.context(i))
        explored += int(choice.explored)
        assert explored <= 0.1 * (i + 1)
        bandit.update(stream.context(i), choice.model, Outcome(1.0, 0.0))
    assert explored > 0


def test_cost_lowers_utility_at_finite_willingness_to_pay() -> None:
    bandit = LinUCB(("cheap", "dear"), 1, alpha=0.0, exploration_budget=0.0)
    ctx = Context(np.ones(1))
    for _ in range(50):
        bandit.update(ctx, 0, Outcome(0.6, 1e-5))
        bandit.update(ctx, 1, Outcome(0.7, 1e-3))
    bandit.reward.willingness_to_pay = 1e-3  # the dear model's extra 0.1 quality costs 1.0
    assert bandit.choose(ctx).model == 0
    bandit.reward.willingness_to_pay = 1.0
    assert bandit.choose(ctx).model == 1


def test_bad_hyperparameters_and_features_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="forget"):
        LinUCB(("a",), 2, forget=1.5)
    with pytest.raises(ConfigError, match="expected 2 features"):
        LinUCB(("a",), 2).choose(Context(np.ones(3)))
    with pytest.raises(ConfigError, match="prior_quality"):
        LinUCB(("a",), 2, warm_start=True).choose(Context(np.ones(2)))
