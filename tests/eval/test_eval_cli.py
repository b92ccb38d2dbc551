"""``polyroute eval`` and ``polyroute calibrate`` end to end on a small slice of dcrouter."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from polyroute.cli import main
from polyroute.dataset import RoutingDataset
from polyroute.errors import ConfigError
from polyroute.eval.calibrate import calibrate
from polyroute.eval.evaluate import Plan, evaluate, folds, parse_spec
from polyroute.eval.io import load_dataset, write_dataset

FAST = "knn:encoder=tfidf:k=10"


@pytest.fixture(scope="module")
def small() -> RoutingDataset:
    full = load_dataset("dcrouter")
    return full.subset(np.arange(0, len(full), 23))  # ~240 rows across every task


@pytest.fixture
def small_dir(tmp_path: Path, small: RoutingDataset) -> Path:
    return write_dataset(small, tmp_path / "slice")


def test_eval_cli_cv2_writes_json_and_png(
    small_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out, png = tmp_path / "out.json", tmp_path / "out.png"
    argv = ["eval", "--data", str(small_dir / "train.jsonl"), "--models"]
    argv += [str(small_dir / "models.json"), "--cv", "2", "--routers", FAST]
    argv += ["--json", str(out), "--plot", str(png), "--bootstrap", "50", "--quiet"]
    assert main([*argv, "--markdown", str(tmp_path / "out.md")]) == 0
    report = json.loads(out.read_text())
    names = [r["name"] for r in report["routers"]]
    assert names == ["random", "cheapest", "best-single", "zero-router", "oracle", FAST]
    assert report["protocol"]["mode"] == "cv"
    assert report["protocol"]["folds"] == 2
    knn = report["routers"][-1]
    assert 0.0 < knn["metrics"]["aiq"] <= 1.0
    lo, hi = knn["intervals"]["aiq"]
    assert lo <= knn["metrics"]["aiq"] <= hi
    assert "mmlu" in knn["per_task"]
    oracle = report["routers"][4]
    assert oracle["metrics"]["max_quality"] >= knn["metrics"]["max_quality"]
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    md = (tmp_path / "out.md").read_text()
    assert f"| {FAST} | " in md
    assert "2-fold CV (seed 0)" in md
    printed = capsys.readouterr().out
    assert "AIQ" in printed
    assert FAST in printed


def test_eval_with_test_file(small: RoutingDataset, tmp_path: Path) -> None:
    train = write_dataset(small.subset(range(160)), tmp_path / "train")
    test = write_dataset(small.subset(range(160, len(small))), tmp_path / "test")
    out = tmp_path / "o.json"
    argv = ["eval", "--data", str(train), "--test", str(test / "train.jsonl")]
    argv += ["--routers", "", "--json", str(out), "--bootstrap", "0", "--quiet"]
    assert main(argv) == 0
    report = json.loads(out.read_text())
    assert report["protocol"]["mode"] == "test"
    assert report["protocol"]["rows"] == len(small) - 160
    assert report["routers"][0]["intervals"] == {}


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--routers", "nope"], "unknown router 'nope'"),
        (["--routers", "knn:k"], "expected NAME[:KEY=VALUE...]"),
        (["--routers", "knn:bogus=1"], "bad hyperparameters"),
        (["--cv", "1"], "--cv: expected 2 <= K"),
        (["--bootstrap", "-1"], "--bootstrap: expected >= 0"),
    ],
)
def test_eval_cli_errors_are_one_line(
    small_dir: Path, extra: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["eval", "--data", str(small_dir), "--quiet", *extra]) == 2
    err = capsys.readouterr().err
    assert err.startswith("polyroute: error: ")
    assert message in err
    assert "Traceback" not in err


def test_eval_cli_bad_row_names_the_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.jsonl"
    good = {"id": "a", "prompt": "p", "scores": {"m": 1}, "costs": {"m": 0.1}}
    bad.write_text(json.dumps(good) + '\n{"id": "b", "scores": {"m": 1}}\n', encoding="utf-8")
    assert main(["eval", "--data", str(bad), "--quiet"]) == 2
    assert f"{bad}:2: field 'prompt' is missing" in capsys.readouterr().err


def test_folds_are_seeded_and_partition_rows() -> None:
    a, b = folds(10, 3, seed=4), folds(10, 3, seed=4)
    assert [f.tolist() for f in a] == [f.tolist() for f in b]
    assert sorted(np.concatenate(a).tolist()) == list(range(10))
    assert parse_spec("knn:k=20:encoder=tfidf") == ("knn", {"k": 20, "encoder": "tfidf"})


def test_evaluate_api_with_a_router(small: RoutingDataset) -> None:
    report = evaluate(small, Plan(routers=(FAST,), cv=2, resamples=20, per_task=False))
    knn = report["routers"][-1]
    assert knn["name"] == FAST
    assert knn["fit_seconds"] > 0
    assert knn["predict_ms_per_prompt"] > 0
    assert "per_task" not in knn


def test_calibrate_by_hand() -> None:
    # two rows, models (cheap, dear); predictions = truth
    scores = np.array([[0.0, 1.0], [1.0, 1.0]])
    costs = np.array([[1.0, 4.0], [1.0, 4.0]])
    ds = RoutingDataset(("a", "b"), ("p", "q"), ("cheap", "dear"), scores, costs)
    # best single: dear (quality 1, cost 4). Under 0.7 x 4 = 2.8: row0 -> dear, row1 -> cheap
    cal = calibrate(scores, costs, ds, target_cost_fraction=0.7)
    assert cal.quality == 1.0
    assert cal.cost == pytest.approx(2.5)
    assert cal.cost_fraction == pytest.approx(2.5 / 4)
    assert cal.willingness_to_pay > 0
    cheap = calibrate(scores, costs, ds, target_quality=0.5)
    assert cheap.cost == 1.0
    assert cheap.quality == 0.5


def test_calibrate_cli(
    small: RoutingDataset, small_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    artifact = pytest.importorskip("polyroute.routers.artifact")
    from polyroute.routers.learned.knn import KNNRouter

    router = KNNRouter(encoder="tfidf", k=10).fit(small)
    path = artifact.save_router(router, tmp_path / "knn")
    argv = ["calibrate", "--router", str(path), "--data", str(small_dir)]
    assert main([*argv, "--target-cost-fraction", "0.4"]) == 0
    out = capsys.readouterr().out
    assert f"select: {{router: {path}, willingness_to_pay: " in out
    assert main([*argv, "--target-quality", "0.99"]) == 2
    assert "unreachable" in capsys.readouterr().err


def test_default_router_list_skips_auto_and_baselines() -> None:
    from polyroute.cli_eval import _router_list

    names = _router_list(None)
    assert "knn" in names
    assert "auto" not in names
    assert "oracle" not in names
    assert _router_list("oracle, knn:k=5") == ("knn:k=5",)  # baselines are always reported


def test_per_task_table_is_printed(
    small_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["eval", "--data", str(small_dir), "--routers", "", "--cv", "2"]
    assert main([*argv, "--bootstrap", "10", "--per-task", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "per task" in out
    assert "gsm8k" in out


def test_compare_to_gives_paired_differences(small: RoutingDataset) -> None:
    plan = Plan(routers=(FAST,), cv=2, resamples=30, per_task=False, compare_to="best-single")
    report = evaluate(small, plan)
    knn = report["routers"][-1]
    delta = knn["paired"]["quality_at_best_cost"]
    assert knn["paired"]["reference"] == "best-single"
    assert delta["delta"] == pytest.approx(
        knn["metrics"]["quality_at_best_cost"] - report["routers"][2]["metrics"]["max_quality"]
    )
    lo, hi = delta["interval"]
    assert lo <= delta["delta"] <= hi
    assert "paired" not in report["routers"][0]  # baselines other than the oracle: no pairs


def test_compare_to_unknown_fails_before_training(small: RoutingDataset) -> None:
    with pytest.raises(ConfigError, match="--compare-to 'knn': not among"):
        evaluate(small, Plan(routers=(FAST,), compare_to="knn"))


def test_two_model_pool_reports_apgr_and_cpt(
    small: RoutingDataset, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cols = [
        small.models.index("gemma-2-9b-it"),
        small.models.index("llama-3.1-nemotron-51b-instruct"),
    ]
    pair = RoutingDataset(
        small.ids,
        small.prompts,
        tuple(small.models[j] for j in cols),
        small.scores[:, cols],
        small.costs[:, cols],
        small.tasks,
    )
    out = tmp_path / "pair"
    write_dataset(pair, out)
    argv = ["eval", "--data", str(out), "--cv", "2", "--routers", FAST, "--bootstrap", "20"]
    assert main([*argv, "--quiet", "--json", str(tmp_path / "p.json")]) == 0
    report = json.loads((tmp_path / "p.json").read_text())
    rows = {r["name"]: r for r in report["routers"]}
    assert rows["random"]["metrics"]["apgr"] == pytest.approx(0.5)
    assert rows["oracle"]["metrics"]["apgr"] > rows[FAST]["metrics"]["apgr"]
    assert 0.0 <= rows[FAST]["metrics"]["cpt50"] <= 100.0
    assert "apgr" not in rows["cheapest"]["metrics"]
    assert "APGR" in capsys.readouterr().out


class _NanRouter:
    def fit(self, dataset: RoutingDataset) -> _NanRouter:
        self.m = len(dataset.models)
        return self

    def predict(self, prompts: Sequence[str]) -> np.ndarray:
        return np.full((len(prompts), self.m), np.nan)


def test_non_finite_predictions_are_refused(
    small: RoutingDataset, monkeypatch: pytest.MonkeyPatch
) -> None:
    import polyroute.eval.evaluate as ev

    monkeypatch.setattr(ev, "make_router", lambda spec: _NanRouter())
    with pytest.raises(ConfigError, match="'broken' returned non-finite"):
        evaluate(small, Plan(routers=("broken",), cv=2, resamples=0))
