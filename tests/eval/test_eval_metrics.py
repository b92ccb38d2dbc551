"""Metrics against small cases computed by hand (see docs/metrics.md for the definitions)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from polyroute import curves
from polyroute.eval import metrics as mx
from polyroute.eval import summary


def arr(*rows: object) -> np.ndarray:
    return np.array(rows, dtype=np.float64)


# -- the chooser ------------------------------------------------------------------------------


def test_choose_trades_quality_against_cost_and_breaks_ties_to_cheaper() -> None:
    pred, est = arr([0.9, 0.5]), arr([2.0, 1.0])
    assert mx.choose(pred, est, 0.0)[0] == 0  # w = inf: quality only
    assert mx.choose(pred, est, 0.5)[0] == 1  # 0.9-1.0 < 0.5-0.5
    assert mx.choose(pred, est, 0.4)[0] == 1  # 0.1 == 0.1: tie -> cheaper
    assert mx.choose(pred, est, 0.3)[0] == 0  # 0.3 > 0.2
    assert mx.choose(pred, est, math.inf)[0] == 1  # w = 0: cheapest
    assert mx.choose(arr([0.5, 0.5, 0.5]), arr([3.0, 1.0, 1.0]), 0.0)[0] == 1  # tie: cheap, first


def test_sweep_two_prompts_by_hand() -> None:
    scores = arr([1.0, 0.0], [1.0, 1.0])
    costs = arr([2.0, 1.0], [2.0, 1.0])
    curve = mx.sweep(scores, costs, scores, costs, ws=np.array([math.inf, 2.0, 1.0, 0.0]))
    # w=inf: row0 -> model0, row1 tie -> cheaper model1; w=2 (lam .5): row0 1-1=0 > 0-.5
    # w=1 (lam 1): row0 1-2 == 0-1 tie -> model1; w=0: cheapest everywhere
    assert curve.cost.tolist() == [1.5, 1.5, 1.0, 1.0]
    assert curve.quality.tolist() == [1.0, 1.0, 0.5, 0.5]


def test_lambda_grid_spans_quality_only_to_cheapest() -> None:
    pred = arr([0.9, 0.5], [0.6, 0.5])
    est = arr([2.0, 1.0], [2.0, 1.0])
    grid = mx.lambda_grid(pred, est, points=3)
    # switch points: row0 0.4, row1 0.1 -> quantiles 0.1, 0.25, 0.4
    assert grid.tolist() == pytest.approx([0.0, 0.1, 0.25, 0.4, math.inf])
    assert mx.to_w(np.array([0.0, 0.5, math.inf])).tolist() == [math.inf, 2.0, 0.0]


# -- envelope, AIQ, quality at cost ----------------------------------------------------------

COST = arr(1.0, 2.0, 3.0, 4.0)
QUAL = arr(0.5, 0.6, 0.9, 0.8)


def test_envelope_is_concave_hull_cut_at_the_best_point() -> None:
    xs, ys = mx.envelope(COST, QUAL)
    # (2, .6) lies below the chord (1,.5)-(3,.9) (which gives .7 there); (4, .8) is past the peak
    assert xs.tolist() == [1.0, 3.0]
    assert ys.tolist() == [0.5, 0.9]


def test_envelope_keeps_best_of_equal_costs_and_cheapest_peak() -> None:
    xs, ys = mx.envelope(arr(1.0, 1.0, 2.0, 3.0), arr(0.2, 0.4, 0.8, 0.8))
    assert xs.tolist() == [1.0, 2.0]
    assert ys.tolist() == [0.4, 0.8]


def test_aiq_by_hand() -> None:
    # over [1, 4]: 1->3 rises .5->.9 (area 1.4), 3->4 flat .9 (area .9): 2.3 / 3
    assert mx.aiq(COST, QUAL, 1.0, 4.0) == pytest.approx(2.3 / 3)
    # over [0, 4]: nothing below cost 1 (counts 0): 2.3 / 4
    assert mx.aiq(COST, QUAL, 0.0, 4.0) == pytest.approx(0.575)
    # over [2, 3]: .7 -> .9, mean .8
    assert mx.aiq(COST, QUAL, 2.0, 3.0) == pytest.approx(0.8)
    # a degenerate range is the envelope value there
    assert mx.aiq(COST, QUAL, 2.0, 2.0) == pytest.approx(0.7)
    # range entirely below the curve: 0
    assert mx.aiq(COST, QUAL, 0.0, 0.5) == 0.0


def test_quality_at_cost_and_cost_to_match() -> None:
    assert mx.quality_at_cost(COST, QUAL, 2.5) == pytest.approx(0.6)  # no mixing: a real point
    assert mx.quality_at_cost(COST, QUAL, 10.0) == pytest.approx(0.9)
    assert math.isnan(mx.quality_at_cost(COST, QUAL, 0.5))
    assert mx.cost_to_match(COST, QUAL, 0.8) == 3.0
    assert mx.cost_to_match(COST, QUAL, 0.5) == 1.0
    assert math.isnan(mx.cost_to_match(COST, QUAL, 0.95))


def test_point_metrics_against_single_models() -> None:
    # single models: A (cost 1, q .5) and B (cost 4, q .8); B is the best single model
    mean_q, mean_c = arr(0.5, 0.8), arr(1.0, 4.0)
    m = summary.point_metrics(COST, QUAL, mean_q, mean_c)
    assert m["aiq"] == pytest.approx(2.3 / 3)
    assert m["quality_at_best_cost"] == pytest.approx(0.9)
    assert m["gain_at_best_cost"] == pytest.approx(0.1)
    assert m["cost_fraction_to_match"] == pytest.approx(3.0 / 4.0)
    assert m["max_quality"] == pytest.approx(0.9)
    assert m["cost_at_max_quality"] == pytest.approx(3.0)


# -- two-model pools: PGR, APGR, CPT -----------------------------------------------------------

# column 0 strong (mean .75), column 1 weak (mean .25)
PAIR = arr([1.0, 0.0], [1.0, 1.0], [0.0, 0.0], [1.0, 0.0])


def test_apgr_and_cpt_by_hand() -> None:
    # order of routing to strong: rows 0, 3, 2, 1 -> gains 1, 1, 0, 0 (of 4 rows)
    frac, pgr = mx.pgr_curve(arr(3.0, 0.0, 1.0, 2.0), PAIR, strong=0, weak=1)
    assert frac.tolist() == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert pgr.tolist() == pytest.approx([0.0, 0.5, 1.0, 1.0, 1.0])
    # trapezoids: .0625 + .1875 + .25 + .25
    assert mx.apgr(frac, pgr) == pytest.approx(0.75)
    assert mx.cpt(frac, pgr, 0.5) == pytest.approx(0.25)
    assert mx.cpt(frac, pgr, 0.8) == pytest.approx(0.4)  # .25 + (.8-.5)/(1-.5) * .25


def test_tied_preferences_are_random_routing() -> None:
    frac, pgr = mx.pgr_curve(np.zeros(4), PAIR, strong=0, weak=1)
    assert frac.tolist() == [0.0, 1.0]
    assert mx.apgr(frac, pgr) == pytest.approx(0.5)
    assert mx.cpt(frac, pgr, 0.8) == pytest.approx(0.8)


def test_pair_metrics_of_random_baseline_and_oracle() -> None:
    costs = np.tile(arr(10.0, 1.0), (4, 1))
    outs = {o.name: o for o in summary.baselines(PAIR, costs)}
    rnd = summary.weighted_metrics(outs["random"], PAIR, costs)
    assert rnd["apgr"] == pytest.approx(0.5)
    assert rnd["cpt50"] == pytest.approx(50.0)
    oracle = summary.weighted_metrics(outs["oracle"], PAIR, costs)
    # the oracle sends rows 0 and 3 (strong wins) first: PGR 1 at 50 % of calls
    assert oracle["cpt50"] == pytest.approx(25.0)
    assert oracle["apgr"] == pytest.approx(0.75)


# -- baselines, weights, bootstrap -------------------------------------------------------------


def test_baselines_by_hand() -> None:
    scores = arr([1.0, 0.0, 1.0], [1.0, 1.0, 0.0])
    costs = arr([4.0, 1.0, 2.0], [4.0, 1.0, 2.0])
    outs = {o.name: o for o in summary.baselines(scores, costs)}
    assert set(outs) == {"random", "cheapest", "best-single", "zero-router", "oracle"}
    rnd = summary.weighted_metrics(outs["random"], scores, costs)
    assert rnd["max_quality"] == pytest.approx(4 / 6)
    assert rnd["cost_at_max_quality"] == pytest.approx(7 / 3)
    assert math.isnan(rnd["aiq"])  # a point, not a curve
    assert summary.weighted_metrics(outs["cheapest"], scores, costs)["max_quality"] == 0.5
    best = summary.weighted_metrics(outs["best-single"], scores, costs)
    assert best["max_quality"] == 1.0
    assert best["cost_fraction_to_match"] == 1.0
    # oracle: row0 -> model2 (cost 2), row1 -> model1 (cost 1): quality 1 at 1.5 = 3/8 of 4
    oracle = summary.weighted_metrics(outs["oracle"], scores, costs)
    assert oracle["max_quality"] == 1.0
    assert oracle["cost_fraction_to_match"] == pytest.approx(1.5 / 4.0)


def test_weights_select_rows() -> None:
    scores = arr([1.0, 0.0], [0.0, 1.0])
    costs = arr([2.0, 1.0], [2.0, 1.0])
    outs = {o.name: o for o in summary.baselines(scores, costs)}
    only_second = arr(0.0, 1.0)
    m = summary.weighted_metrics(outs["cheapest"], scores, costs, only_second)
    assert m["max_quality"] == 1.0


def test_bootstrap_weights_and_interval() -> None:
    w = mx.bootstrap_weights(50, 20, seed=1)
    assert w.shape == (20, 50)
    assert np.allclose(w.sum(axis=1), 1.0)
    assert np.allclose(w * 50, np.round(w * 50))  # counts / n
    assert mx.interval(np.arange(101, dtype=np.float64)) == pytest.approx((2.5, 97.5))
    assert mx.interval(np.array([math.nan, math.nan])) is None


def test_bootstrap_interval_brackets_the_point_estimate() -> None:
    rng = np.random.default_rng(0)
    scores = (rng.random((300, 3)) < [0.4, 0.6, 0.7]).astype(np.float64)
    costs = np.tile(arr(1.0, 2.0, 5.0), (300, 1))
    oracle = summary.baselines(scores, costs)[-1]
    point = summary.weighted_metrics(oracle, scores, costs)
    iv = summary.bootstrap(oracle, scores, costs, mx.bootstrap_weights(300, 200, seed=0))
    lo, hi = iv["aiq"] or (math.nan, math.nan)
    assert lo < point["aiq"] < hi
    assert hi - lo < 0.2


def test_per_task_recomputes_on_task_rows() -> None:
    scores = arr([1.0, 0.0], [0.0, 1.0], [0.0, 1.0])
    costs = np.tile(arr(2.0, 1.0), (3, 1))
    best = next(o for o in summary.baselines(scores, costs) if o.name == "best-single")
    table = summary.per_task(best, scores, costs, ["a", "b", "b"])
    # the best single model overall is column 1 (2/3): 0 on task a, 1 on task b
    assert table["a"]["max_quality"] == 0.0
    assert table["b"]["max_quality"] == 1.0


def test_lambda_grid_subsamples_large_inputs(monkeypatch: pytest.MonkeyPatch) -> None:
    pred = arr([0.9, 0.5], [0.6, 0.5], [0.8, 0.5])
    est = np.tile(arr(2.0, 1.0), (3, 1))
    monkeypatch.setattr(curves, "GRID_ROWS", 2)  # rows 0 and 2: switch points 0.4 and 0.3
    assert mx.lambda_grid(pred, est, points=2).tolist() == pytest.approx([0.0, 0.3, 0.4, math.inf])


def test_bootstrap_chunks_match_one_shot() -> None:
    whole = mx.bootstrap_weights(30, 7, seed=3)
    parts = np.concatenate(list(mx.bootstrap_chunks(30, 7, seed=3, chunk=3)))
    assert np.array_equal(parts, whole)
    assert mx.bootstrap_weights(30, 0, seed=3).shape == (0, 30)
