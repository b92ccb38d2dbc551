"""One chooser and one curve (issue 9): the gateway's ``choose``, the workbench's reports
and ``auto``'s model selection pick and summarise the same way, ties included."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from polyroute import curves
from polyroute.eval import metrics
from polyroute.routers.base import choose
from polyroute.routers.learned._curve import aiq


@settings(max_examples=200, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    w=st.sampled_from([1e-6, 1e-3, 0.5, 10.0, math.inf]),
    ties=st.booleans(),
)
def test_the_gateway_and_the_reports_choose_alike(seed: int, w: float, ties: bool) -> None:
    rng = np.random.default_rng(seed)
    pred = rng.random((40, 4))
    est = rng.random((40, 4)) * 1e-3
    if ties:  # equal predictions and equal costs: ties go to the cheaper, then the first
        pred = np.round(pred, 1)
        est = np.round(est, 4)
    lam = 0.0 if math.isinf(w) else 1.0 / w
    gateway = choose(pred, est, w)
    np.testing.assert_array_equal(gateway, curves.choose(pred, est, lam))
    np.testing.assert_array_equal(gateway, metrics.choose(pred, est, lam))


def test_auto_scores_with_the_reports_aiq() -> None:
    rng = np.random.default_rng(3)
    scores = (rng.random((300, 3)) < [0.4, 0.6, 0.8]).astype(np.float64)
    costs = np.tile([1e-4, 1e-3, 1e-2], (300, 1)) * rng.uniform(0.5, 1.5, (300, 1))
    pred = scores * 0.6 + rng.random((300, 3)) * 0.4
    swept = metrics.sweep(pred, costs, scores, costs)
    single = costs.mean(axis=0)
    expected = metrics.aiq(swept.cost, swept.quality, single.min(), single.max())
    assert aiq(pred, scores, costs) == expected


def test_a_constraint_keeps_the_tie_rule() -> None:
    pred = np.array([[0.5, 0.5, 0.9]])
    est = np.array([[2.0, 1.0, 5.0]])
    assert choose(pred, est, math.inf)[0] == 2
    assert choose(pred, est, math.inf, max_cost_usd=3.0)[0] == 1  # tie: the cheaper
    assert choose(pred, est, math.inf, allowed=[True, False, False])[0] == 0
