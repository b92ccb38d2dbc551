from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from polyroute import Engine, Request, load_config, parse_config
from polyroute.cli import main
from polyroute.errors import ConfigError

ISSUE_CONFIG = """
models:
  small:
    provider: openai
    base_url: http://127.0.0.1:8101/v1
    input_price_per_mtok: 0.1
    output_price_per_mtok: 0.1
  large:
    provider: openai
    base_url: http://127.0.0.1:8102/v1
    model: my-large-model
    api_key: ${LARGE_API_KEY}
    timeout_s: 30
    input_price_per_mtok: 3.0
    output_price_per_mtok: 15.0
signals:
  math:
    type: keyword
    any: [prove, integral, derivative, theorem]
decisions:
  - name: hard-math
    priority: 10
    when: math
    models: [large, small]
    select: static
  - name: default
    when: true
    models: [small, large]
    select: cheapest
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "polyroute.yaml"
    path.write_text(text)
    return path


def test_issue_config_validates_and_routes(tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.setenv("LARGE_API_KEY", "sk-from-env")
    config = load_config(write(tmp_path, ISSUE_CONFIG))
    assert config.models["large"].api_key is not None
    assert config.models["large"].api_key.get_secret_value() == "sk-from-env"
    assert "sk-from-env" not in repr(config)
    engine = Engine(config)
    assert engine.route(Request.chat("prove the theorem")).candidates == ["large", "small"]
    assert engine.route(Request.chat("hello")).decision == "default"
    assert engine.backends["large"].upstream_model == "my-large-model"


def test_missing_env_var_is_a_warning(tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.delenv("LARGE_API_KEY", raising=False)
    config = load_config(write(tmp_path, ISSUE_CONFIG))
    assert config.warnings == ("environment variable LARGE_API_KEY is not set",)


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        (
            "timeout_s: 30",
            "timeout_s: soon",
            "models.large.timeout_s: Input should be a valid number",
        ),
        (
            "timeout_s: 30",
            "timeout_s: -1",
            "models.large.timeout_s: Input should be greater than 0",
        ),
        ("base_url: http://127.0.0.1:8101/v1", "base_url: ftp://x", "models.small.base_url"),
        (
            "provider: openai\n    base_url: http://127.0.0.1:8101",
            "provider: carrier\n    base_url: http://127.0.0.1:8101",
            "models.small.provider: unknown provider 'carrier'",
        ),
        ("when: math", "when: maths", "decisions[0].when: unknown signal 'maths'"),
        (
            "models: [large, small]",
            "models: [large, tiny]",
            "decisions[0].models: unknown model 'tiny'",
        ),
        ("select: static", "select: smartest", "decisions[0].select: unknown selector 'smartest'"),
        ("type: keyword", "type: keywords", "signals.math.type: unknown signal type"),
        (
            "priority: 10",
            "priority: 10\n    colour: red",
            "decisions.0.colour: Extra inputs are not permitted",
        ),
        ("name: default", "name: hard-math", "duplicate decision name 'hard-math'"),
    ],
)
def test_config_errors_name_file_path_and_expectation(
    tmp_path: Path, old: str, new: str, message: str
) -> None:
    assert old in ISSUE_CONFIG
    path = write(tmp_path, ISSUE_CONFIG.replace(old, new, 1))
    with pytest.raises(ConfigError) as info:
        Engine.from_file(path)  # the shape at load, cross-references when built: one pass
    assert str(path) in info.value.message
    assert message in info.value.message


def test_yaml_syntax_error_names_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"polyroute.yaml: line 3, column"):
        load_config(write(tmp_path, "models:\n  a: [\n  b: }\n"))


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read config"):
        load_config(tmp_path / "nope.yaml")


def test_no_decisions_means_cheapest_over_all_models() -> None:
    engine = Engine(
        parse_config(
            {
                "models": {
                    "a": {"base_url": "http://h/v1"},
                    "b": {"base_url": "http://h/v1", "input_price_per_mtok": 1},
                }
            }
        )
    )
    trace = engine.route(Request.chat("x"))
    assert trace.decision == "default" and trace.candidates == ["a", "b"]


def test_profiles_route_by_model_name() -> None:
    engine = Engine(
        parse_config(
            {
                "models": {"a": {"base_url": "http://h/v1"}, "b": {"base_url": "http://h/v1"}},
                "profiles": {"quality": {"decisions": [{"name": "q", "models": ["b", "a"]}]}},
            }
        )
    )
    assert engine.route(Request.chat("x", model="quality")).candidates == ["b", "a"]


def test_cli_validate_and_route(tmp_path: Path, capsys: Any) -> None:
    path = write(tmp_path, ISSUE_CONFIG)
    assert main(["config", "validate", str(path)]) == 0
    assert "OK (2 models, 1 signals, 2 decisions" in capsys.readouterr().out
    assert main(["route", "--config", str(path), "prove it"]) == 0
    assert "decision:   hard-math" in capsys.readouterr().out
    bad = write(tmp_path, ISSUE_CONFIG.replace("when: math", "when: nope"))
    assert main(["config", "validate", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("polyroute: error: ") and "Traceback" not in err
