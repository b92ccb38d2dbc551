"""``polyroute eval --plans``: cascades and majority votes judged beside the routers."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from polyroute.cli import main
from polyroute.errors import ConfigError
from polyroute.eval.plans import parse_plans, vote

MC = Path(__file__).resolve().parents[3] / "shared" / "data" / "cascades" / "mc"
KNN = "knn:encoder=tfidf"


def _finite(value: Any) -> bool:
    return isinstance(value, float) and math.isfinite(value)


def test_cascade_and_vote_beside_a_router_on_mc(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out, md = tmp_path / "out.json", tmp_path / "out.md"
    argv = ["eval", "--data", str(MC), "--cv", "2", "--routers", KNN]
    argv += ["--plans", "cascade,vote:3", "--json", str(out), "--markdown", str(md)]
    assert main([*argv, "--bootstrap", "50", "--quiet"]) == 0
    report = json.loads(out.read_text())
    rows = {r["name"]: r for r in report["routers"]}
    assert [r["name"] for r in report["routers"]][-3:] == [KNN, "cascade", "vote:3"]

    cascade = rows["cascade"]
    for key in ("aiq", "quality_at_best_cost", "cost_fraction_to_match"):
        assert _finite(cascade["metrics"][key]), key
    lo, hi = cascade["intervals"]["aiq"]
    assert lo <= cascade["metrics"]["aiq"] <= hi
    points = cascade["plan"]["points"]
    assert [p["target_cost_fraction"] for p in points] == pytest.approx(
        [0.1 * k for k in range(1, 13)]
    )
    for p in points:  # every fold aims at F x its best single model's cost
        assert p["cost_fraction"] <= p["target_cost_fraction"] + 0.1, p
    assert cascade["metrics"]["quality_at_best_cost"] > rows["cheapest"]["metrics"]["max_quality"]

    ballot = rows["vote:3"]
    (point,) = ballot["plan"]["points"]
    assert _finite(point["quality"]) and _finite(point["cost"])
    assert ballot["metrics"]["max_quality"] == pytest.approx(point["quality"])
    assert ballot["metrics"]["cost_at_max_quality"] == pytest.approx(point["cost"])
    assert "| cascade | 0.5 |" in md.read_text()
    assert "vote:3" in capsys.readouterr().out


def _row(i: int, answers: list[str], costs: list[float]) -> dict[str, Any]:
    models = ("a", "b", "c", "d")
    said = dict(zip(models, answers, strict=True))
    right = {m: float(t.strip(" .()*").lower() == "b") for m, t in said.items()}
    return {
        "id": f"r{i}",
        "prompt": f"question {i}",
        "scores": right,
        "costs": dict(zip(models, costs, strict=True)),
        "answers": said,
    }


def test_vote_quality_is_the_hand_computed_majority(tmp_path: Path) -> None:
    # gold answer "B"; d is always wrong, so a, b, c are the 3 best in every fold
    ballots = [
        ["B", "b.", "C"],  # b -> right
        ["C", "C", "B"],  # c -> wrong
        ["B", "B", "B"],  # right
        [" b ", "A", "(B)"],  # right (normalised)
        ["A", "B", "A"],  # a -> wrong
        ["B", "B", "D"],  # right
        ["B", "B", "B"],  # right
        ["**B**", "B", "B"],  # right
    ]
    data = tmp_path / "synthetic.jsonl"
    lines = [json.dumps(_row(i, [*b, "Z"], [1.0, 2.0, 3.0, 0.5])) for i, b in enumerate(ballots)]
    data.write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = tmp_path / "out.json"
    argv = ["eval", "--data", str(data), "--cv", "2", "--routers", "", "--plans", "vote:3"]
    assert main([*argv, "--json", str(out), "--bootstrap", "0", "--quiet"]) == 0
    report = json.loads(out.read_text())
    (point,) = report["routers"][-1]["plan"]["points"]
    assert point["quality"] == pytest.approx(6 / 8)
    assert point["cost"] == pytest.approx(6.0)


def test_vote_ties_go_to_the_best_model_and_empty_answers_abstain() -> None:
    answers = np.array([["x", "y", "z"], ["", "q", "q"], ["p", "", ""]])
    scores = np.array([[0.0, 1.0, 0.0], [0.0, 1.0, 1.0], [1.0, 0.0, 0.0]])
    costs = np.ones((3, 3))
    quality, cost = vote(answers, scores, costs, [1, 0, 2])  # model 1 is the best
    assert quality.tolist() == [1.0, 1.0, 1.0]
    assert cost.tolist() == [3.0, 3.0, 3.0]


@pytest.mark.parametrize(
    ("plans", "message"),
    [
        ("vote:2", ":1 has no 'answers'"),
        ("cascade", ":1 has neither 'logprobs' nor 'verify_logprob'"),
        ("cascade:statistic=verify", ":1 has no 'verify_logprob'"),
    ],
)
def test_rows_without_answers_are_a_clear_error(
    tmp_path: Path, plans: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "plain.jsonl"
    rows = [
        {"id": f"r{i}", "prompt": "p", "scores": {"m": 1.0, "n": 0.0}, "costs": {"m": 2, "n": 1}}
        for i in range(6)
    ]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    argv = ["eval", "--data", str(data), "--cv", "2", "--routers", "", "--plans", plans]
    assert main([*argv, "--quiet"]) == 2
    err = capsys.readouterr().err
    assert f"{data}{message}" in err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    "text", ["vote", "vote:0", "vote:x", "cascade:lo=2:hi=1", "cascade:bogus=1", "beam"]
)
def test_bad_plan_specs(text: str) -> None:
    with pytest.raises(ConfigError, match="--plans"):
        parse_plans(text)
