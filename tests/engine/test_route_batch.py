"""``polyroute route --input FILE --output FILE``: a batch dry run, no model called."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from polyroute.cli import main

CONFIG = """
models:
  small: {base_url: "http://127.0.0.1:9/v1", input_price_per_mtok: 0.1, output_price_per_mtok: 0.1}
  large: {base_url: "http://127.0.0.1:9/v1", input_price_per_mtok: 3.0, output_price_per_mtok: 15.0}
signals:
  math: {type: keyword, any: [prove, integral, derivative, theorem]}
decisions:
  - {name: hard-math, priority: 10, when: math, models: [large, small], select: static}
  - {name: default, when: true, models: [small, large], select: cheapest}
"""


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def lines(*rows: Any) -> str:
    return "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows)


@pytest.fixture
def config(tmp_path: Path) -> Path:
    return write(tmp_path / "polyroute.yaml", CONFIG)


def test_every_row_is_routed_in_order(tmp_path: Path, config: Path) -> None:
    rows = lines(
        {"id": "a", "prompt": "prove that sqrt(2) is irrational"},
        "",
        {"id": 7, "messages": [{"role": "system", "content": "be brief"},
                               {"role": "user", "content": "hello there"}]},
        {"id": "direct", "prompt": "prove it", "model": "small"},
    )  # fmt: skip
    src, out = write(tmp_path / "in.jsonl", rows), tmp_path / "out.jsonl"
    argv = ["route", "--config", str(config), "--input", str(src), "--output", str(out)]
    assert main(argv) == 0
    got = [json.loads(line) for line in out.read_text().splitlines()]
    assert [g["id"] for g in got] == ["a", 7, "direct"]
    assert [g["decision"] for g in got] == ["hard-math", "default", "direct:small"]
    assert got[0]["candidates"] == ["large", "small"]
    assert got[1]["candidates"] == ["small", "large"]
    assert got[0]["signals"] == {"math": True}
    assert got[1]["signals"] == {"math": False}


@pytest.mark.parametrize(
    ("row", "expected"),
    [
        ('{"prompt": "hi"}', 'missing "id"'),
        ('{"id": 1}', 'exactly one of "prompt"'),
        ('{"id": 1, "prompt": "hi", "messages": []}', 'exactly one of "prompt"'),
        ('{"id": 1, "prompt": 5}', '"prompt" must be a string'),
        ('{"id": true, "prompt": "hi"}', '"id" must be a string or an integer'),
        ('{"id": 1, "messages": [{"content": "no role"}]}', "role"),
        ("[1, 2]", "expected a JSON object"),
        ("{not json", "not a JSON object"),
    ],
)
def test_a_bad_row_names_the_file_and_line(
    tmp_path: Path, config: Path, capsys: pytest.CaptureFixture[str], row: str, expected: str
) -> None:
    src = write(tmp_path / "in.jsonl", lines({"id": 0, "prompt": "fine"}, row))
    out = tmp_path / "out.jsonl"
    argv = ["route", "--config", str(config), "--input", str(src), "--output", str(out)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"polyroute: error: {src}:2: ") and expected in err, err
    assert "Traceback" not in err
    assert not out.exists(), "nothing is routed before every row is checked"


def test_a_row_that_cannot_be_routed_is_written_not_dropped(tmp_path: Path) -> None:
    no_default = CONFIG.replace(
        "  - {name: default, when: true, models: [small, large], select: cheapest}\n", ""
    )
    config = write(tmp_path / "polyroute.yaml", no_default)
    src = write(
        tmp_path / "in.jsonl", lines({"id": 1, "prompt": "prove it"}, {"id": 2, "prompt": "hi"})
    )
    out = tmp_path / "out.jsonl"
    argv = ["route", "--config", str(config), "--input", str(src), "--output", str(out)]
    assert main(argv) == 1
    got = [json.loads(line) for line in out.read_text().splitlines()]
    assert got[0]["decision"] == "hard-math"
    assert got[1]["id"] == 2 and got[1]["error"]


def test_prompt_and_input_are_exclusive(tmp_path: Path, config: Path, capsys: Any) -> None:
    src = write(tmp_path / "in.jsonl", lines({"id": 1, "prompt": "x"}))
    assert main(["route", "--config", str(config), "--input", str(src), "prove it"]) == 2
    assert main(["route", "--config", str(config)]) == 2
    assert main(["route", "--config", str(config), "--output", "x.jsonl", "hi"]) == 2
    assert capsys.readouterr().err.count("polyroute: error: route:") == 3


def test_the_command_runs_as_a_process(tmp_path: Path, config: Path) -> None:
    """End to end: the real CLI in its own process, rows from a file, rows to stdout."""
    src = write(tmp_path / "in.jsonl", lines({"id": "q", "prompt": "integral of x"}))
    argv = [sys.executable, "-m", "polyroute", "route", "--config", str(config),
            "--input", str(src)]  # fmt: skip
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    row = json.loads(done.stdout)
    assert row == {"id": "q", "decision": "hard-math", "candidates": ["large", "small"],
                   "signals": {"math": True}}  # fmt: skip
    assert "routed 1 of 1 rows" in done.stderr
