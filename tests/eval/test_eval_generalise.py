"""``polyroute eval --group-by FIELD`` and ``--repeat N``: through the CLI process and the API."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from routers.learned_fixtures import FAST

from polyroute.cli import main
from polyroute.dataset import RoutingDataset
from polyroute.eval.evaluate import BASELINES, Plan, evaluate
from polyroute.eval.io import load_groups, write_dataset
from polyroute.routers.learned import ROUTERS

KNN = "knn:encoder=tfidf:k=10"
TASKS = ("algebra", "history", "poetry", "chemistry")
MODELS = ("tiny", "mid", "big")
# P(correct) per task and model: tiny is good at poetry only, big everywhere
SKILL = np.array([[0.2, 0.5, 0.8], [0.3, 0.7, 0.8], [0.9, 0.6, 0.8], [0.1, 0.3, 0.9]])
COST = np.array([1e-5, 1e-4, 1e-3])
WORDS = {
    "algebra": "solve equation variable factor root sum product integer prime linear slope axis",
    "history": "war empire century king treaty revolt dynasty siege senate colony crown border",
    "poetry": "rhyme verse sonnet stanza meter ode elegy haiku muse lyric couplet refrain",
    "chemistry": "molecule reaction acid bond atom ion salt oxide catalyst enzyme proton gas",
}


def synthetic(n: int = 200, seed: int = 0) -> RoutingDataset:
    rng = np.random.default_rng(seed)
    task_idx = np.arange(n) % len(TASKS)
    prompts = []
    for i, t in enumerate(task_idx):
        words = WORDS[TASKS[t]].split()
        prompts.append(f"q{i} " + " ".join(rng.choice(words, size=6).tolist()))
    scores = (rng.random((n, 3)) < SKILL[task_idx]).astype(np.float64)
    costs = COST * rng.uniform(0.8, 1.2, size=(n, 3))
    return RoutingDataset(
        tuple(f"r{i}" for i in range(n)),
        tuple(prompts),
        MODELS,
        scores,
        costs,
        tuple(TASKS[t] for t in task_idx),
    )


@pytest.fixture(scope="module")
def data() -> RoutingDataset:
    return synthetic()


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory, data: RoutingDataset) -> Path:
    return write_dataset(data, tmp_path_factory.mktemp("gen") / "synthetic")


def _cli(tmp: Path, data_dir: Path, *extra: str) -> dict[str, Any]:
    out = tmp / f"{len(list(tmp.iterdir()))}.json"
    argv = [sys.executable, "-m", "polyroute", "eval", "--data", str(data_dir)]
    argv += ["--routers", KNN, "--bootstrap", "40", "--quiet", "--json", str(out), *extra]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=180, check=False)
    assert done.returncode == 0, done.stderr
    report: dict[str, Any] = json.loads(out.read_text(encoding="utf-8"))
    report["stdout"] = done.stdout
    return report


def _rows(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {r["name"]: r for r in report["routers"]}


def test_cli_leave_one_task_out(data: RoutingDataset, data_dir: Path, tmp_path: Path) -> None:
    md = tmp_path / "g.md"
    report = _cli(tmp_path, data_dir, "--group-by", "task", "--markdown", str(md))
    proto = report["protocol"]
    assert proto["mode"] == "groups"
    assert proto["splitter"] == "leave-one-group-out"
    assert proto["group_by"] == "task"
    assert proto["folds"] == 4
    assert proto["groups"] == {t: 50 for t in sorted(TASKS)}
    rows = _rows(report)
    assert list(rows) == ["random", "cheapest", "best-single", "zero-router", "oracle", KNN]
    best = MODELS.index(report["best_single"])
    labels = np.asarray(data.tasks)
    for task in TASKS:
        mask = labels == task
        group = {name: r["per_group"][task] for name, r in rows.items()}
        # the best single model's quality on the task, computed here from the matrices
        assert group["best-single"]["max_quality"] == pytest.approx(data.scores[mask, best].mean())
        assert group["best-single"]["gain_at_best_cost"] == pytest.approx(0.0)
        assert group["oracle"]["max_quality"] == pytest.approx(data.scores[mask].max(1).mean())
        assert group["oracle"]["quality_at_best_cost"] >= group["best-single"]["max_quality"]
        assert group["oracle"]["gain_at_best_cost"] >= 0.0
        assert group["oracle"]["max_quality"] >= group[KNN]["max_quality"]
        assert 0.0 <= group[KNN]["quality_at_best_cost"] <= 1.0
    # pooled over every held-out prediction: the usual metrics and intervals
    knn = rows[KNN]
    assert 0.0 < knn["metrics"]["aiq"] <= rows["oracle"]["metrics"]["aiq"]
    lo, hi = knn["intervals"]["aiq"]
    assert lo <= knn["metrics"]["aiq"] <= hi
    assert rows["best-single"]["metrics"]["max_quality"] == pytest.approx(
        data.scores[:, best].mean()
    )
    assert "repeats" not in knn
    assert "per_task" in knn  # --group-by task: per_task and per_group hold the same rows
    assert knn["per_task"] == knn["per_group"]
    assert "leave-one-task-out (4 groups)" in report["stdout"]
    assert "groups with gain > 0" in report["stdout"]
    text = md.read_text(encoding="utf-8")
    assert "leave-one-task-out (4 groups)" in text
    assert "| groups with gain > 0 |" in text
    assert "| poetry | 50 |" in text


def test_cli_repeated_folds(data: RoutingDataset, data_dir: Path, tmp_path: Path) -> None:
    once, again = (evaluate(data, Plan((KNN,), cv=3, seed=s, resamples=0)) for s in (4, 5))
    rep = _cli(tmp_path, data_dir, "--cv", "3", "--seed", "4", "--repeat", "2", "--per-task")
    proto = rep["protocol"]
    assert (proto["mode"], proto["folds"], proto["repeats"], proto["seeds"]) == ("cv", 3, 2, [4, 5])
    knn, oracle = _rows(rep)[KNN], _rows(rep)["oracle"]
    for metric in ("aiq", "quality_at_best_cost", "gain_at_best_cost"):
        values = knn["repeats"][metric]["values"]
        # repeat r is exactly the plain --cv run with seed + r
        assert values == pytest.approx(
            [_rows(once)[KNN]["metrics"][metric], _rows(again)[KNN]["metrics"][metric]]
        )
        assert knn["metrics"][metric] == pytest.approx(np.mean(values))
        assert knn["repeats"][metric]["range"] == pytest.approx([min(values), max(values)])
        assert knn["repeats"][metric]["sd"] == pytest.approx(np.std(values, ddof=1))
    assert knn["repeats"]["aiq"]["values"][0] != knn["repeats"]["aiq"]["values"][1]
    lo, hi = knn["intervals"]["aiq"]
    assert lo < hi
    assert oracle["repeats"]["aiq"]["sd"] == 0.0  # baselines do not depend on the folds
    assert oracle["metrics"]["aiq"] >= knn["metrics"]["aiq"]
    assert set(knn["per_task"]) == set(TASKS)
    assert "3-fold CV x 2 repeats (seeds 4..5)" in rep["stdout"]
    assert "AIQ over repeats" in rep["stdout"]
    assert "mean of 2 repeats" in rep["stdout"]


def test_cli_repeated_folds_over_groups(data_dir: Path, tmp_path: Path) -> None:
    report = _cli(tmp_path, data_dir, "--group-by", "task", "--cv", "2", "--repeat", "2")
    proto = report["protocol"]
    assert (proto["splitter"], proto["folds"], proto["repeats"]) == ("group-k-fold", 2, 2)
    knn = _rows(report)[KNN]
    assert len(knn["repeats"]["aiq"]["values"]) == 2
    assert set(knn["per_group"]) == set(TASKS)
    assert "2 folds over 4 task groups (seed 0) x 2 repeats" in report["stdout"]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--group-by", "task", "--repeat", "2"], "leaving one group out has a single split"),
        (["--group-by", "task", "--cv", "5"], "2 <= K <= 4 (number of groups)"),
        (["--repeat", "0"], "--repeat: expected >= 1"),
        (["--group-by", "source"], "field 'source' is missing; --group-by source needs"),
    ],
)
def test_cli_errors_are_one_line(
    data_dir: Path, extra: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["eval", "--data", str(data_dir), "--routers", "", "--quiet", *extra]) == 2
    err = capsys.readouterr().err
    assert err.startswith("polyroute: error: ")
    assert message in err
    assert "Traceback" not in err


def test_cli_test_file_refuses_repeat_and_groups(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["eval", "--data", str(data_dir), "--test", str(data_dir / "train.jsonl"), "--quiet"]
    assert main([*argv, "--repeat", "2"]) == 2
    assert "--repeat and --group-by need CV" in capsys.readouterr().err


def test_group_by_any_field_with_limit(
    data: RoutingDataset, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_dataset(data, tmp_path / "d") / "train.jsonl"
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    for i, row in enumerate(rows):
        row["source"] = i % 3  # a numeric field
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    assert load_groups(path, "source")[:4] == ("0", "1", "2", "0")
    out = tmp_path / "o.json"
    argv = ["eval", "--data", str(path), "--group-by", "source", "--limit", "60", "--routers", ""]
    assert main([*argv, "--bootstrap", "0", "--quiet", "--json", str(out)]) == 0
    report = json.loads(out.read_text(encoding="utf-8"))
    assert report["protocol"]["groups"] == {"0": 20, "1": 20, "2": 20}
    assert "leave-one-source-out (3 groups)" in capsys.readouterr().out


ROUTER_NAMES = [
    pytest.param(n, marks=pytest.mark.slow) if n == "auto" else n
    for n in ROUTERS.names()
    if n not in BASELINES
]


@pytest.mark.parametrize("name", ROUTER_NAMES)
def test_every_registered_router_under_groups_and_repeats(data: RoutingDataset, name: str) -> None:
    spec = ":".join([name, *(f"{k}={json.dumps(v)}" for k, v in FAST.get(name, {}).items())])
    plan = Plan(routers=(spec,), cv=2, repeats=2, group_by="task", resamples=10)
    report = evaluate(data, plan, groups=data.tasks)
    rows = _rows(report)
    assert set(rows) == {*BASELINES, "zero-router", spec}
    for row in rows.values():
        assert set(row["per_group"]) == set(TASKS)
        assert len(row["repeats"]["quality_at_best_cost"]["values"]) == 2
    assert 0.0 <= rows[spec]["metrics"]["quality_at_best_cost"] <= 1.0
