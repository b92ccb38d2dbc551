"""``auto`` decides by data, not by the machine: the same choice on a cold and a warm
embedding cache, every family tried whatever the budget, and the single models' prior
saved, on purpose and said, when no router beats it beyond the noise (issue 9)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from routers.learned_fixtures import synthetic

from polyroute.dataset import RoutingDataset
from polyroute.eval.io import write_dataset
from polyroute.routers.learned.auto import CANDIDATES, AutoRouter

FAMILIES = {family for family, _ in CANDIDATES}


def test_every_family_is_tried_whatever_the_budget(small: RoutingDataset) -> None:
    auto = AutoRouter(encoder="tfidf", folds=2, time_budget_s=0.0).fit(small)
    tried = {r["router"] for r in auto.cv_results_}
    assert tried >= FAMILIES
    assert auto.skipped_, "a zero budget cuts the extra configurations, and says so"
    _, info = auto.artifact_router()
    assert info["skipped_by_time_budget"] == auto.skipped_


def test_a_prompt_blind_pool_keeps_the_prior_by_decision() -> None:
    """Scores that do not depend on the prompt: no router can beat the hull; auto saves
    the prior and says why."""
    data = synthetic(160, seed=3)
    rng = np.random.default_rng(5)
    noise = RoutingDataset(
        ids=data.ids,
        prompts=data.prompts,
        models=data.models,
        scores=(rng.random(data.scores.shape) < np.array([0.5, 0.6])).astype(np.float64),
        costs=data.costs,
        prices=data.prices,
    )
    auto = AutoRouter(encoder="tfidf", folds=3, time_budget_s=5.0).fit(noise)
    assert auto.decision_["chosen"] == "prior", auto.decision_
    assert auto.best_name_ == "cluster" and auto.best_.get_params()["n_clusters"] == 1
    assert "no candidate beat" in auto.decision_["why"]
    preds = auto.predict(list(noise.prompts[:20]))
    assert np.allclose(preds, preds[0]), "the prior predicts the same for every prompt"


def test_a_prompt_driven_pool_gets_a_real_router() -> None:
    data = synthetic(160, seed=4)
    auto = AutoRouter(encoder="tfidf", folds=3, time_budget_s=5.0).fit(data)
    assert auto.decision_["chosen"] != "prior", auto.decision_
    assert auto.decision_["gain_interval"][0] > 0
    maths, hello = auto.predict([data.prompts[1], data.prompts[0]])
    assert maths[1] - maths[0] > hello[1] - hello[0], "maths leans to the big model"


def _train(data: Path, out: Path, cache: Path) -> tuple[dict[str, object], str]:
    argv = [
        sys.executable, "-m", "polyroute", "train", "--data", str(data),
        "--router", "auto:encoder=minilm:folds=3", "--time-budget", "0", "--out", str(out),
    ]  # fmt: skip
    env = {**os.environ, "POLYROUTE_CACHE_DIR": str(cache)}
    done = subprocess.run(argv, capture_output=True, text=True, timeout=600, env=env, check=False)
    assert done.returncode == 0, done.stderr
    return json.loads((out / "manifest.json").read_text()), done.stdout


@pytest.mark.slow
def test_cold_and_warm_cache_choose_the_same_router(small: RoutingDataset, tmp_path: Path) -> None:
    """A short budget and an empty embedding cache used to leave time for the first
    candidate only, and the constant prior was saved without a word."""
    pytest.importorskip("onnxruntime")
    data = tmp_path / "data"
    write_dataset(small, data)
    cache = tmp_path / "cache"
    cold, cold_out = _train(data, tmp_path / "cold", cache)
    assert any(cache.rglob("*")), "the cold run filled the cache"
    warm, _ = _train(data, tmp_path / "warm", cache)
    for key in ("router", "params", "models"):
        assert cold[key] == warm[key]
    cold_info, warm_info = cold["info"], warm["info"]
    assert isinstance(cold_info, dict) and isinstance(warm_info, dict)
    for key in ("selected", "decision", "skipped_by_time_budget"):
        assert cold_info[key] == warm_info[key], key
    tried = {row["router"] for row in cold_info["cv"]}
    assert tried >= FAMILIES
    assert [r["aiq"] for r in cold_info["cv"]] == [r["aiq"] for r in warm_info["cv"]]
    assert "auto selected:" in cold_out and "cut" in cold_out
    # the rows name their tasks: every candidate was also judged on held-out tasks
    assert all("aiq_tasks_held_out" in row for row in cold_info["cv"])
    decision = cold_info["decision"]
    assert isinstance(decision, dict) and "held-out tasks" in decision["criterion"]
    assert "criterion:" in cold_out
    if decision["chosen"] != "prior":
        assert decision["shrinkage"]["factor"] in (0.0, 0.25, 0.5, 1.0)
