"""Every example config in ``examples/`` builds (what a new user copies must work)."""

from __future__ import annotations

from pathlib import Path

import pytest

from polyroute import Engine
from polyroute.config import load_config

EXAMPLES = sorted((Path(__file__).resolve().parents[2] / "examples").glob("*.yaml"))


def test_there_are_examples() -> None:
    assert {p.name for p in EXAMPLES} >= {"demo.yaml", "plans.yaml", "learning.yaml"}


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_an_example_config_builds(path: Path, tmp_path: Path) -> None:
    text = path.read_text()
    copy = tmp_path / path.name  # a copy: stores named in it are created beside it
    copy.write_text(text)
    engine = Engine(load_config(copy))
    assert engine.profiles["auto"], path
