"""``auto`` judges candidates on held-out tasks as well as held-out rows, offers routers
that read the prompt's meaning alone, and shrinks departures that are noise (issue 9)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from routers.learned_fixtures import synthetic

from polyroute.dataset import RoutingDataset
from polyroute.errors import ConfigError
from polyroute.routers.artifact import ARRAYS, load_router, save_router
from polyroute.routers.learned import auto as auto_mod
from polyroute.routers.learned._features import MINILM_DIM, SEMANTIC, features, view
from polyroute.routers.learned._optim import group_kfold_indices
from polyroute.routers.learned.auto import AutoRouter
from polyroute.routers.shrink import Shrinkage


def test_group_folds_never_put_a_group_on_both_sides() -> None:
    rng = np.random.default_rng(0)
    groups = [f"t{g}" for g in rng.integers(0, 7, size=300)]
    seen = np.zeros(300, dtype=int)
    for train, test in group_kfold_indices(groups, 4, seed=3):
        assert not {groups[i] for i in train} & {groups[i] for i in test}
        assert len(train) + len(test) == 300
        seen[test] += 1
    assert (seen == 1).all(), "every row is judged exactly once"


def test_held_out_tasks_are_scored_when_the_rows_name_them(small: RoutingDataset) -> None:
    assert small.tasks is not None and len(set(small.tasks)) >= 3
    auto = AutoRouter(encoder="tfidf", folds=3, time_budget_s=5.0).fit(small)
    for row in auto.cv_results_:
        held = row["aiq_tasks_held_out"]
        assert row["score"] == pytest.approx((row["aiq"] + held) / 2, abs=2e-6), row
    assert "held-out tasks" in auto.decision_["criterion"]
    top = max(auto.cv_results_[1:], key=lambda r: r["score"])  # [0] is the prior
    assert auto.decision_["best_candidate"] == top["router"]


def test_without_tasks_only_rows_are_held_out() -> None:
    data = synthetic(120, seed=2)  # no task field
    auto = AutoRouter(encoder="tfidf", folds=3, time_budget_s=5.0).fit(data)
    for row in auto.cv_results_:
        assert "aiq_tasks_held_out" not in row
        assert row["score"] == row["aiq"]
    assert "none held out" in auto.decision_["criterion"]


def test_the_meaning_view_is_the_minilm_encoding(small: RoutingDataset) -> None:
    pytest.importorskip("onnxruntime")
    from polyroute.embed import make_encoder

    prompts = list(small.prompts[:16])
    both = features(make_encoder("minilm+tfidf").fit(prompts), prompts)
    alone = make_encoder("minilm").encode(prompts)
    cut = view(both, "minilm+tfidf", SEMANTIC)
    assert cut is not None and cut.shape == (16, MINILM_DIM)
    assert np.allclose(cut, alone, atol=1e-5)
    assert view(both, "minilm+tfidf", {}) is both
    assert view(both, "tfidf", SEMANTIC) is None, "no MiniLM half to cut"


def test_shrinkage_soft_thresholds_departures() -> None:
    shrink = Shrinkage(np.array([0.5, 0.2]), np.array([0.1, 0.0]))
    got = shrink.apply(np.array([[0.55, 0.3], [0.8, 0.1], [0.35, 0.2]]))
    assert np.allclose(got, [[0.5, 0.3], [0.7, 0.1], [0.45, 0.2]])


def test_auto_records_its_shrinkage_and_the_artifact_keeps_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    data = synthetic(160, seed=4)
    monkeypatch.setattr(auto_mod, "SHRINK_FACTORS", (0.5,))
    auto = AutoRouter(encoder="tfidf", folds=3, time_budget_s=5.0).fit(data)
    assert auto.decision_["chosen"] != "prior"
    assert auto.decision_["shrinkage"]["factor"] == 0.5
    shrink = auto.best_.shrinkage_
    assert shrink is not None and (shrink.tau > 0).any()
    prompts = list(data.prompts[:12])
    raw = np.clip(auto.best_._predict(prompts), 0, 1)
    assert not np.allclose(auto.predict(prompts), raw), "the shrinkage is applied"

    out = save_router(auto, tmp_path / "r")
    loaded = load_router(out)
    assert loaded.shrinkage_ is not None
    assert np.allclose(loaded.predict(prompts), auto.predict(prompts))


def test_an_artifact_with_a_negative_threshold_is_refused(tmp_path: Path) -> None:
    data = synthetic(80, seed=1)
    router = AutoRouter(encoder="tfidf", folds=2, time_budget_s=2.0).fit(data).best_
    router.shrinkage_ = Shrinkage(data.scores.mean(axis=0), np.array([0.1, -0.1]))
    out = save_router(router, tmp_path / "r")
    with pytest.raises(ConfigError, match="shrink/tau"):
        load_router(out)
    assert (out / ARRAYS).exists()
