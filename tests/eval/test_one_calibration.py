"""One calibration: the table ``train`` stores, the gateway's ``target_cost_fraction``
and ``polyroute calibrate --target-cost-fraction`` pick the same operating point."""

from __future__ import annotations

import numpy as np
import pytest
from routers.learned_fixtures import synthetic

from polyroute import curves
from polyroute.eval.calibrate import calibrate, calibration_table
from polyroute.selectors.learned import w_for_cost_fraction


def test_pick_within_cost_takes_the_best_quality_that_fits() -> None:
    cost = np.array([1.0, 2.0, 2.0, 3.0, 5.0])
    quality = np.array([0.5, 0.7, 0.7, 0.6, 0.9])
    w = np.array([1.0, 3.0, 2.0, 4.0, 5.0])
    assert curves.pick_within_cost(cost, quality, w, 4.0) == 2  # 0.7 at 2.0, the smaller w
    assert curves.pick_within_cost(cost, quality, w, 5.0) == 4
    assert curves.pick_within_cost(cost, quality, w, 1.5) == 0
    assert curves.pick_within_cost(cost, quality, w, 0.5) is None


@pytest.mark.parametrize("fraction", [0.15, 0.3, 0.5, 0.8, 1.0, 2.0])
def test_the_stored_table_and_calibrate_agree(fraction: float) -> None:
    data = synthetic(200, seed=7)
    rng = np.random.default_rng(1)
    pred = np.clip(data.scores * 0.6 + rng.random(data.scores.shape) * 0.4, 0, 1)
    est = data.costs
    table = calibration_table(pred, est, data)
    assert all(row["w"] > 0 for row in table)
    assert [r["w"] for r in table] == sorted(r["w"] for r in table)
    picked = w_for_cost_fraction(table, fraction, "test")
    try:
        direct = calibrate(pred, est, data, target_cost_fraction=fraction)
    except Exception:  # nothing that cheap: the gateway falls back to the smallest w
        assert picked == min(r["w"] for r in table)
        return
    assert picked == direct.willingness_to_pay
    row = next(r for r in table if r["w"] == picked)
    assert row["cost_fraction"] <= fraction + 1e-6
    assert row["quality"] == pytest.approx(direct.quality, abs=1e-6)


def test_a_table_without_qualities_keeps_the_largest_w_within() -> None:
    table = [{"w": 1e-9, "cost_fraction": 0.1}, {"w": 1.0, "cost_fraction": 0.9}]
    assert w_for_cost_fraction(table, 0.5, "t") == 1e-9
    assert w_for_cost_fraction(table, 0.95, "t") == 1.0
    assert w_for_cost_fraction(table, 0.01, "t") == 1e-9
