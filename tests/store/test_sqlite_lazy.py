"""The SQLite store touches no file until it is used: ``polyroute config validate`` on a
config whose stores are SQLite leaves nothing behind, and a path that cannot be a file is
still refused at build time."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from polyroute.cli import main
from polyroute.errors import ConfigError
from polyroute.store.sqlite import SqliteStore

CONFIG = """
models:
  small: {base_url: "http://127.0.0.1:9/v1"}
store: {type: sqlite, path: state.sqlite3}
feedback: {}
"""


def test_validate_creates_no_sqlite_file(tmp_path: Path, capsys: Any) -> None:
    path = tmp_path / "polyroute.yaml"
    path.write_text(CONFIG)
    assert main(["config", "validate", str(path)]) == 0
    assert "OK (1 models" in capsys.readouterr().out
    # the engine's store and the feedback store (SQLite beside the config by default)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["polyroute.yaml"]


def test_validate_refuses_a_store_in_a_missing_directory(tmp_path: Path, capsys: Any) -> None:
    path = tmp_path / "polyroute.yaml"
    path.write_text(CONFIG.replace("path: state.sqlite3", "path: nowhere/state.sqlite3"))
    assert main(["config", "validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert "cannot open an SQLite file (no directory" in err and "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["polyroute.yaml"]


def test_a_directory_is_not_a_store(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="it is a directory"):
        SqliteStore(str(tmp_path))


async def test_the_file_appears_on_first_use(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite3"
    store = SqliteStore(str(path))
    assert not path.exists()
    await store.set("k", b"v")
    assert path.exists()
    assert await store.get("k") == b"v"
    await store.aclose()


async def test_an_unused_store_closes(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite3"
    store = SqliteStore(str(path))
    await store.aclose()
    assert not path.exists()
