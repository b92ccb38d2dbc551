"""Drift, the budget autopilot and ``polyroute simulate`` end to end."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from online.helpers import synthetic_stream

from polyroute.cli import main
from polyroute.dataset import RoutingDataset
from polyroute.errors import ConfigError
from polyroute.online import BudgetController, Drift, LinUCB, Reward, Stream, replay, summarise


def test_drift_changes_only_the_named_model_after_the_fraction() -> None:
    data = synthetic_stream(1000).data
    drifted = Drift.parse("left@0.4").apply(data, seed=7)
    assert np.array_equal(drifted.scores[:400], data.scores[:400])
    assert np.array_equal(drifted.scores[:, 1:], data.scores[:, 1:])
    assert np.array_equal(drifted.costs, data.costs)
    after, before = drifted.scores[400:, 0], data.scores[400:, 0]
    assert set(np.unique(after[before == 1])) == {0.0, 1.0}
    assert after.sum() == pytest.approx(0.3 * before.sum(), rel=0.15)
    assert np.array_equal(Drift.parse("left@0.4").apply(data, seed=7).scores, drifted.scores)


def test_drift_spec_errors_name_the_option() -> None:
    with pytest.raises(ConfigError, match="--drift 'left'"):
        Drift.parse("left")
    with pytest.raises(ConfigError, match="unknown model"):
        Drift.parse("nope@0.5").apply(synthetic_stream(10).data, seed=0)


def test_budget_autopilot_keeps_spend_within_five_percent() -> None:
    n, rng = 3000, np.random.default_rng(0)
    scores = np.stack([rng.random(n) < 0.5, rng.random(n) < 0.9], axis=1).astype(np.float64)
    costs = np.tile([1e-5, 1e-4], (n, 1)) * rng.uniform(0.5, 1.5, size=(n, 1))
    data = RoutingDataset(
        ids=tuple(map(str, range(n))),
        prompts=("p",) * n,
        models=("cheap", "dear"),
        scores=scores,
        costs=costs,
    )
    budget = 4e-5
    bandit = LinUCB(data.models, 1, reward=Reward(1.0))
    result = replay(bandit, Stream(data, np.ones((n, 1))), BudgetController(budget, 1e-2))
    summary = summarise(result, data, budget)
    assert abs(summary["spend_vs_budget"]) < 0.05
    assert summary["mean_quality"] > 0.55  # above the cheap model, the only one within budget


def _argv(stream_dir: Path, out: Path, router: str, *extra: str) -> list[str]:
    return ["simulate", "--data", str(stream_dir), "--router", router, "--out", str(out), *extra]


def test_simulate_writes_one_row_per_input(
    stream_dir: Path, artifact: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = [json.loads(line) for line in (stream_dir / "train.jsonl").read_text().splitlines()]
    out = tmp_path / "choices.jsonl"
    extra = ["--warm-start", str(artifact), "--budget-per-query", "1e-4", "--drift"]
    assert main(_argv(stream_dir, out, "linucb:dim=8", *extra, "gemma-2-9b-it@0.5")) == 0
    printed = capsys.readouterr().out
    assert "regret" in printed and "spent" in printed and "after drift" in printed
    assert "spend anchor  cost priced at W" in printed  # warm: on by default
    choices = [json.loads(line) for line in out.read_text().splitlines()]
    assert [c["id"] for c in choices] == [r["id"] for r in rows]
    assert {c["model"] for c in choices} <= set(rows[0]["scores"])
    curve = out.with_suffix(".curve.csv").read_text().splitlines()
    assert len(curve) == len(rows) + 1 and curve[0].startswith("row,cumulative_utility")


def test_warm_bandit_repeats_the_artifact_on_the_first_rows(
    stream_dir: Path, artifact: Path, tmp_path: Path
) -> None:
    static, warm = tmp_path / "static.jsonl", tmp_path / "warm.jsonl"
    w = ["--willingness-to-pay", "0.003"]
    assert main(_argv(stream_dir, static, str(artifact), *w)) == 0
    assert main(_argv(stream_dir, warm, "bandit:dim=8", "--warm-start", str(artifact), *w)) == 0
    first = [json.loads(line) for line in static.read_text().splitlines()[:19]]
    learned = [json.loads(line) for line in warm.read_text().splitlines()[:19]]
    assert learned[0] == first[0]
    assert sum(a == b for a, b in zip(first, learned, strict=True)) >= 0.6 * len(first)


def test_bad_router_is_a_clear_error(
    stream_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(_argv(stream_dir, tmp_path / "c.jsonl", "nonsense:alpha=1")) == 2
    err = capsys.readouterr().err
    assert "--router 'nonsense:alpha=1'" in err and "linucb" in err and "artifact" in err
    assert main(_argv(stream_dir, tmp_path / "c.jsonl", "linucb:gamma=1")) == 2
    assert "unknown hyperparameter 'gamma'" in capsys.readouterr().err


def test_row_without_prompt_names_file_and_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "rows.jsonl"
    good = {"id": "a", "prompt": "hi", "scores": {"m": 1.0}, "costs": {"m": 0.1}}
    bad = {"id": "b", "scores": {"m": 1.0}, "costs": {"m": 0.1}}
    data.write_text(json.dumps(good) + "\n" + json.dumps(bad) + "\n")
    assert main(_argv(data, tmp_path / "c.jsonl", "ema")) == 2
    err = capsys.readouterr().err
    assert f"{data}:2" in err and "'prompt'" in err
    assert not (tmp_path / "c.jsonl").exists()
