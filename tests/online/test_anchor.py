"""The spend anchor: a warm bandit spends what its artifact would have, and buys quality
with it, instead of drifting to dearer models as it learns."""

from __future__ import annotations

import math

import numpy as np
import pytest

from polyroute.dataset import RoutingDataset
from polyroute.online import LinUCB, Reward, StaticRouter, Stream, replay
from polyroute.online.state import LinearState

MODELS = ("cheap", "sleeper", "dear")
W = 5e-3


def misjudged_stream(n: int = 3000, seed: int = 0) -> Stream:
    """The artifact rates ``cheap`` 0.6, ``sleeper`` 0.5 and ``dear`` 0.66; in truth they
    solve 60 %, 75 % and 99 %.  ``cheap`` and ``sleeper`` cost 1e-4, ``dear`` 8e-4.  At
    ``W`` the artifact picks ``cheap``; the truth favours ``dear`` (utility 0.83 > 0.73),
    then ``sleeper`` at ``cheap``'s price."""
    rng = np.random.default_rng(seed)
    scores = (rng.random((n, 3)) < [0.6, 0.75, 0.99]).astype(np.float64)
    costs = np.tile([1e-4, 1e-4, 8e-4], (n, 1))
    data = RoutingDataset(
        ids=tuple(f"r{i}" for i in range(n)),
        prompts=tuple(f"p{i}" for i in range(n)),
        models=MODELS,
        scores=scores,
        costs=costs,
    )
    prior_q = np.tile([0.6, 0.5, 0.66], (n, 1))
    return Stream(data, np.ones((n, 1)), prior_q, costs.copy())


def bandit(**kw: float) -> LinUCB:
    """Exploring enough (``alpha`` 1) to find out, on this small prior gap."""
    return LinUCB(MODELS, 1, reward=Reward(W), warm_start=True, alpha=1.0, seed=0, **kw)


def test_learning_alone_moves_to_the_dearer_model() -> None:
    stream = misjudged_stream()
    static = replay(StaticRouter(MODELS, Reward(W)), stream)
    free = replay(bandit(spend_anchor=0.0), stream)
    late = slice(len(stream.data) // 2, None)
    assert free.cost[late].mean() > 3 * static.cost[late].mean()


def test_the_anchor_holds_spend_and_buys_quality_at_that_price() -> None:
    stream = misjudged_stream()
    static = replay(StaticRouter(MODELS, Reward(W)), stream)
    held = replay(bandit(), stream)
    late = slice(len(stream.data) // 2, None)
    assert held.cost[late].mean() <= static.cost[late].mean()
    assert held.cost.mean() <= static.cost.mean() * 1.01
    # the money goes where quality is cheap: the sleeper, at the cheap model's price
    assert held.quality[late].mean() > static.quality[late].mean() + 0.08
    assert np.bincount(held.picks[late], minlength=3).argmax() == MODELS.index("sleeper")


def test_a_model_that_fails_outright_is_left_even_for_a_dearer_one() -> None:
    """The anchor prices cost at most 4 times higher: money is held, not at any price."""
    stream = misjudged_stream()
    stream.data.scores[:, :2] = 0.0  # cheap and sleeper now fail every request
    held = replay(bandit(), stream)
    late = slice(len(stream.data) // 2, None)
    assert (held.picks[late] == MODELS.index("dear")).mean() > 0.9


def test_the_anchor_reports_the_w_it_chose_at() -> None:
    stream = misjudged_stream(400)
    router = bandit()
    assert router.choose(stream.context(0)).willingness_to_pay is None  # nothing learned yet
    moved = []
    for i in range(400):
        choice = router.choose(stream.context(i))
        moved.append(choice.willingness_to_pay)
        m = choice.model
        router.update(stream.context(i), m, _outcome(stream, i, m))
    assert any(w is not None and w != W for w in moved)
    off = bandit(spend_anchor=0.0)
    for i in range(50):
        choice = off.choose(stream.context(i))
        assert choice.willingness_to_pay is None
        off.update(stream.context(i), choice.model, _outcome(stream, i, choice.model))
    assert off.state.anchor.tolist() == [0.0, 0.0, 0.0]


def test_a_cold_bandit_has_no_anchor() -> None:
    cold = LinUCB(MODELS, 1, reward=Reward(W), seed=0)
    assert cold.spend_anchor == 0.0


def test_the_anchor_survives_a_state_round_trip_and_old_states_load() -> None:
    stream = misjudged_stream(50)
    router = bandit()
    for i in range(50):
        m = router.choose(stream.context(i)).model
        router.update(stream.context(i), m, _outcome(stream, i, m))
    saved = router.to_dict()
    again = bandit()
    again.load(saved)
    assert np.array_equal(again.state.anchor, router.state.anchor)
    assert again.anchored_w() == router.anchored_w()
    del saved["anchor"]  # written before the anchor existed
    assert LinearState.from_dict(saved).anchor.tolist() == [0.0, 0.0, 0.0]


@pytest.mark.parametrize("bad", [{"spend_anchor": -1.0}, {"anchor_horizon": 0.5}])
def test_bad_anchor_options_are_config_errors(bad: dict[str, float]) -> None:
    from polyroute.errors import ConfigError

    with pytest.raises(ConfigError, match="spend_anchor"):
        bandit(**bad)


def _outcome(stream: Stream, i: int, m: int):  # type: ignore[no-untyped-def]
    from polyroute.online import Outcome

    data = stream.data
    return Outcome(float(data.scores[i, m]), float(data.costs[i, m]))


def test_pure_quality_is_never_anchored() -> None:
    stream = misjudged_stream(100)
    router = LinUCB(MODELS, 1, reward=Reward(math.inf), warm_start=True, seed=0)
    for i in range(100):
        choice = router.choose(stream.context(i))
        assert choice.willingness_to_pay is None
        router.update(stream.context(i), choice.model, _outcome(stream, i, choice.model))
