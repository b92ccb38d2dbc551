"""Tuning a cascade: exact on separable synthetic rows, within budget on the shared data."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from polyroute.cli import main
from polyroute.plans import confidence
from polyroute.plans.artifact import load_cascade
from polyroute.plans.cascade_data import CascadeData, load_cascade_data
from polyroute.plans.cascade_fit import Target, best_single, fit_cascade
from polyroute.plans.cascade_model import simulate

# ../shared beside the repository: always there in CI (never copied into the repository)
CASCADES = Path(__file__).resolve().parents[3] / "shared" / "data" / "cascades"


def _synthetic_rows(n: int, seed: int) -> list[dict[str, object]]:
    """``cheap`` is right on ~60 % of rows and sure exactly then; ``strong`` is right on
    ~90 % regardless, at 100 x the price."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        cheap_right = bool(rng.random() < 0.6)
        sure = rng.uniform(-0.05, -0.01) if cheap_right else rng.uniform(-2.5, -0.8)
        rows.append(
            {
                "id": f"r{i}",
                "prompt": f"question {i}",
                "scores": {"cheap": float(cheap_right), "strong": float(rng.random() < 0.9)},
                "costs": {"cheap": 1e-5, "strong": 1e-3},
                "logprobs": {"cheap": [float(sure)], "strong": [-0.1]},
            }
        )
    return rows


def _dataset(tmp_path: Path, rows: list[dict[str, object]]) -> Path:
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    prices = {"input_price_per_mtok": 1.0, "output_price_per_mtok": 1.0}
    (tmp_path / "models.json").write_text(json.dumps({"cheap": prices, "strong": prices}))
    return tmp_path


def _accepted(data: CascadeData, threshold: float) -> np.ndarray:
    col = data.models.index("cheap")
    chain = (col, data.models.index("strong"))
    _, _, answered = simulate(
        data.scores, data.costs, data.confidence, chain, np.array([threshold])
    )
    return answered == 0


def test_a_separating_confidence_is_accepted_exactly_when_right(tmp_path: Path) -> None:
    data = load_cascade_data(_dataset(tmp_path / "train", _synthetic_rows(300, 1)), "logprob_mean")
    fresh = load_cascade_data(_dataset(tmp_path / "new", _synthetic_rows(300, 2)), "logprob_mean")
    for target in (Target(cost_fraction=1.0), Target(willingness_to_pay=1.0)):
        fit = fit_cascade(data, target, max_stages=2, folds=3, repeats=1)
        assert [s.model for s in fit.stages] == ["cheap", "strong"]
        first = fit.stages[0]
        assert first.statistic == "logprob_mean" and first.threshold is not None
        for rows in (data, fresh):
            right = rows.scores[:, rows.models.index("cheap")] == 1.0
            assert np.array_equal(_accepted(rows, first.threshold), right)


def test_the_statistic_is_the_gateways(tmp_path: Path) -> None:
    rows = _synthetic_rows(20, 3)
    rows[0]["logprobs"] = {"cheap": [-0.2, -0.4], "strong": [0.0]}
    rows[1]["logprobs"] = {"strong": [-0.1]}  # cheap has none: its stage escalates
    data = load_cascade_data(_dataset(tmp_path, rows), "logprob_mean")
    assert data.confidence[0, data.models.index("cheap")] == confidence.logprob_mean([-0.2, -0.4])
    assert np.isnan(data.confidence[1, data.models.index("cheap")])
    assert not _accepted(data, -1e9)[1]


def test_a_trained_cascade_keeps_to_its_budget_on_held_out_rows() -> None:
    data = load_cascade_data(CASCADES / "mc", "logprob_mean")
    order = np.random.default_rng(0).permutation(len(data))
    halves = (np.sort(order[: len(data) // 2]), np.sort(order[len(data) // 2 :]))
    for train_idx, test_idx in (halves, halves[::-1]):
        train, test = data.subset(train_idx), data.subset(test_idx)
        fit = fit_cascade(train, Target(cost_fraction=0.5), folds=3, repeats=1)
        col = {m: j for j, m in enumerate(data.models)}
        chain = tuple(col[s.model] for s in fit.stages)
        t = np.array([s.threshold for s in fit.stages[:-1]], dtype=np.float64)
        _, cost, _ = simulate(test.scores, test.costs, test.confidence, chain, t)
        ref = col[fit.reference["best_single"]]
        assert ref == best_single(train)
        assert cost.mean() <= 0.6 * test.costs[:, ref].mean()
        assert fit.cv["cost_fraction"] <= 0.55


def test_train_plan_writes_a_loadable_artifact(tmp_path: Path) -> None:
    data = _dataset(tmp_path / "data", _synthetic_rows(120, 4))
    out = tmp_path / "plan"
    argv = ["train", "--plan", "cascade", "--data", str(data), "--out", str(out)]
    assert main([*argv, "--target-cost-fraction", "0.8", "--cv-folds", "3"]) == 0
    spec = load_cascade(out)
    assert spec.models == ("cheap", "strong")
    assert spec.target == {"cost_fraction": 0.8}
    assert spec.reference["best_single"] == "strong"
    assert spec.cv["cost_fraction"] <= 0.8
    assert main([*argv, "--target-cost-fraction", "0.8", "--willingness-to-pay", "1"]) == 2
    assert main(["train", "--data", str(data), "--out", str(tmp_path / "x")]) == 2
