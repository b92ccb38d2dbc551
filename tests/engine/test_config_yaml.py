"""Config files are read with bounded cost: alias bombs, deep nesting, recursive aliases,
huge or non-UTF-8 files and bad scalar values are a one-line ``ConfigError`` naming the
file, never a long stall, a ``MemoryError`` or a traceback; ordinary anchors, aliases and
merge keys still work."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from hostile_yaml import DEEP, RECURSIVE, alias_bomb

from polyroute import load_config
from polyroute.config_yaml import MAX_CONFIG_BYTES, MAX_DEPTH, MAX_NODES
from polyroute.errors import ConfigError

ANCHORS = """
models:
  small: &small
    base_url: http://127.0.0.1:8101/v1
    timeout_s: 7
    headers: &team {x-team: search}
  large:
    <<: *small
    model: big-model
    base_url: http://127.0.0.1:8102/v1
  other:
    base_url: http://127.0.0.1:8103/v1
    headers: *team
signals:
  math: {type: keyword, any: &words [prove, integral]}
  proof: {type: keyword, any: *words}
decisions:
  - {name: default, when: true, models: &both [small, large]}
  - {name: math, when: math, models: *both}
"""


def refused(tmp_path: Path, text: str | bytes) -> str:
    """Load ``text`` as a config file; the ConfigError's message (asserted one line)."""
    path = tmp_path / "polyroute.yaml"
    if isinstance(text, str):
        path.write_text(text)
    else:
        path.write_bytes(text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = info.value.message
    assert message.startswith(f"{path}:"), message
    assert "\n" not in message, message
    return message


@pytest.mark.parametrize(
    "levels", [6, 10], ids=["531k-nodes-expanded", "3.5-billion-nodes-expanded"]
)
def test_alias_bomb_is_refused_before_it_expands(tmp_path: Path, levels: int) -> None:
    started = time.monotonic()
    message = refused(tmp_path, alias_bomb(levels))
    assert f"aliases expand to more than {MAX_NODES:,} nodes" in message
    assert time.monotonic() - started < 5.0  # loosely: it took minutes and gigabytes


def test_anchors_aliases_and_merge_keys_still_work(tmp_path: Path) -> None:
    path = tmp_path / "polyroute.yaml"
    path.write_text(ANCHORS)
    config = load_config(path)
    small, large, other = (config.models[n] for n in ("small", "large", "other"))
    assert large.timeout_s == small.timeout_s == 7
    assert large.base_url == "http://127.0.0.1:8102/v1" and large.model == "big-model"
    assert large.headers == other.headers == {"x-team": "search"}
    assert config.signals["proof"]["any"] == ["prove", "integral"]
    assert config.decisions[1].models == ["small", "large"]


def test_deep_nesting_is_refused(tmp_path: Path) -> None:
    message = refused(tmp_path, DEEP)
    assert f"nests more than {MAX_DEPTH} levels deep" in message


def test_aliases_may_not_nest_past_the_depth_limit(tmp_path: Path) -> None:
    half = MAX_DEPTH // 2 + 1  # each anchor nests half the limit; the alias chain twice
    text = f"a: &a {'[' * half}1{']' * half}\nb: &b {'[' * half}*a{']' * half}\n"
    assert "levels of nesting" in refused(tmp_path, text)


def test_a_recursive_alias_is_refused(tmp_path: Path) -> None:
    assert "a recursive structure" in refused(tmp_path, RECURSIVE)


def test_a_huge_file_is_refused_before_parsing(tmp_path: Path) -> None:
    message = refused(tmp_path, "# " + "x" * MAX_CONFIG_BYTES)
    assert f"over the {MAX_CONFIG_BYTES // 2**20} MiB limit" in message


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (b"models: {m: {base_url: \xff\xfe}}\n", "not UTF-8 text"),
        ("models: {m: {base_url: 'http://x', options: {d: 2001-02-30}}}\n", "day is out of"),
        ("models: {m: {base_url: 'http://x', options: {n: " + "1" * 5000 + "}}}\n", "digits"),
    ],
    ids=["not-utf8", "impossible-date", "5000-digit-int"],
)
def test_undecodable_text_and_bad_values_are_config_errors(
    tmp_path: Path, text: str | bytes, expected: str
) -> None:
    message = refused(tmp_path, text)
    assert expected in message
    assert "set_int_max_str_digits" not in message  # Python's advice means nothing here


def test_syntax_errors_keep_their_line_and_column(tmp_path: Path) -> None:
    message = refused(tmp_path, "models:\n  a: [\n  b: }\n")
    assert "polyroute.yaml: line 3, column" in message and "invalid YAML" in message
