"""``polyroute train`` and ``polyroute predict`` end to end on a slice of dcrouter."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from polyroute.cli import main
from polyroute.dataset import RoutingDataset
from polyroute.eval.io import write_dataset
from polyroute.routers.artifact import load_router


@pytest.fixture
def data_dir(tmp_path: Path, small: RoutingDataset) -> Path:
    return write_dataset(small, tmp_path / "data")


def test_train_then_predict(
    data_dir: Path, tmp_path: Path, small: RoutingDataset, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "router"
    argv = ["train", "--data", str(data_dir / "train.jsonl"), "--models"]
    argv += [str(data_dir / "models.json"), "--router", "knn:encoder=tfidf:k=10", "--out", str(out)]
    assert main(argv) == 0
    assert "wrote" in capsys.readouterr().out
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["router"] == "knn" and manifest["params"]["k"] == 10
    fractions = [row["cost_fraction"] for row in manifest["info"]["calibration"]]
    assert fractions == sorted(fractions) and 0 < fractions[0] < fractions[-1]

    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text(
        "".join(
            json.dumps({"id": f"p{i}", "prompt": p}) + "\n" for i, p in enumerate(small.prompts[:5])
        )
    )
    preds = tmp_path / "preds.jsonl"
    assert main(["predict", "--router", str(out), "--data", str(prompts), "--out", str(preds)]) == 0
    rows = [json.loads(line) for line in preds.read_text().splitlines()]
    assert [r["id"] for r in rows] == [f"p{i}" for i in range(5)]
    assert set(rows[0]["predicted"]) == set(small.models)
    expected = load_router(out).predict(list(small.prompts[:5]))
    got = np.array([[r["predicted"][m] for m in small.models] for r in rows])
    np.testing.assert_allclose(got, expected, atol=1e-6)


def test_train_auto_writes_the_selected_router(data_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "auto"
    argv = ["train", "--data", str(data_dir), "--router", "auto:encoder=tfidf:folds=2"]
    assert main([*argv, "--time-budget", "3", "--out", str(out)]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["info"]["selected_by"] == "auto"
    assert manifest["router"] == manifest["info"]["selected"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--router", "nope"], "unknown learned router 'nope'"),
        (["--router", "knn:bogus=1"], "bad hyperparameters"),
    ],
)
def test_train_errors_are_one_line(
    data_dir: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    message: str,
) -> None:
    code = main(["train", "--data", str(data_dir), "--out", str(tmp_path / "o"), *argv])
    err = capsys.readouterr().err
    assert code == 2 and message in err and "Traceback" not in err


def test_malformed_training_row_names_the_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text(
        '{"id": "a", "prompt": "hi", "scores": {"m": 1}, "costs": {"m": 0.1}}\n{"id": 2\n'
    )
    assert main(["train", "--data", str(bad), "--router", "knn", "--out", str(tmp_path / "o")]) == 2
    assert "bad.jsonl:2" in capsys.readouterr().err


def test_predict_needs_an_artifact(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    prompts = tmp_path / "p.jsonl"
    prompts.write_text('{"id": "x", "prompt": "hi"}\n')
    code = main(["predict", "--router", str(tmp_path), "--data", str(prompts), "--out", "-"])
    assert code == 2 and "not a router artifact" in capsys.readouterr().err


def test_train_refuses_to_clobber_a_foreign_directory(
    data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "docs"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    assert main(["train", "--data", str(data_dir), "--router", "cheapest", "--out", str(out)]) == 2
    assert "not empty" in capsys.readouterr().err
