"""``difficulty``: a trained router artifact read as a signal (best predicted quality, spread)."""

from __future__ import annotations

from pathlib import Path

import pytest
from routers.learned_fixtures import synthetic

from polyroute import Engine, Request
from polyroute.errors import ConfigError
from polyroute.routers.artifact import save_router
from polyroute.routers.learned.knn import KNNRouter

MATHS = "compute the integral of 31 x squared plus 5 dx please"
HELLO = "hello there friend number 12, how are you today"


@pytest.fixture(scope="module")
def artifact(tmp_path_factory: pytest.TempPathFactory) -> Path:
    router = KNNRouter(encoder="tfidf", k=5).fit(synthetic())
    return save_router(router, tmp_path_factory.mktemp("difficulty") / "knn", {})


def config(tmp_path: Path, router: str, measure: str) -> Path:
    path = tmp_path / "polyroute.yaml"
    path.write_text(
        f"""
models:
  small: {{base_url: "http://127.0.0.1:9"}}
  big: {{base_url: "http://127.0.0.1:9"}}
signals:
  d: {{type: difficulty, router: {router}, measure: {measure}}}
decisions:
  - {{name: matters, when: {{signal: d, gt: 0.5}}, models: [big]}}
  - {{name: rest, models: [small]}}
"""
    )
    return path


def test_spread_sends_prompts_where_the_model_matters_elsewhere(
    tmp_path: Path, artifact: Path
) -> None:
    # the artifact sits beside the config: a relative path is read from the config's folder
    (tmp_path / "router").symlink_to(artifact)
    engine = Engine.from_file(config(tmp_path, "router", "spread"))
    maths = engine.route(Request.chat(MATHS))
    hello = engine.route(Request.chat(HELLO))
    assert maths.decision == "matters" and hello.decision == "rest"
    assert isinstance(maths.signals["d"], float) and maths.signals["d"] > 0.5
    assert isinstance(hello.signals["d"], float) and hello.signals["d"] < 0.5


def test_best_quality_is_high_for_prompts_some_model_solves(tmp_path: Path, artifact: Path) -> None:
    engine = Engine.from_file(config(tmp_path, str(artifact), "best"))
    for prompt in (MATHS, HELLO):
        value = engine.route(Request.chat(prompt)).signals["d"]
        assert isinstance(value, float) and value > 0.5


def test_a_missing_artifact_is_a_config_error_naming_the_field(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"signals\.d\.router: .*nope: no such router"):
        Engine.from_file(config(tmp_path, "nope", "best"))
    with pytest.raises(ConfigError, match=r"signals\.d\.measure"):
        Engine.from_file(config(tmp_path, "nope", "hardest"))
