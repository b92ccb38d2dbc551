"""Hostile config files through the real command line: ``polyroute config validate FILE``
and ``polyroute serve --config FILE`` in their own processes.

Before the bounded YAML loader, a 384-byte alias bomb took about a minute and 1.2 GB
before it was rejected (measured), a longer one runs until memory is exhausted (a
``MemoryError``), and deep nesting or a recursive alias ended in a traceback.  Each must
now exit 2 within seconds with one ``polyroute: error:`` line naming the file.  Every
wait here is bounded.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
from hostile_yaml import DEEP, RECURSIVE, alias_bomb
from procs import LOOPBACK, free_port

RUN_TIMEOUT_S = 30.0  # the bound on a run; a refusal takes about a second
QUICK_S = 10.0  # "within a few seconds", loosely: the interpreter start is most of it

DOCUMENTS = {
    # 8 levels of 9: 43 million leaves once expanded (the old loader: ~1 min, 1.2 GB)
    "bomb-43M": (alias_bomb(8), "aliases expand to more than 100,000 nodes"),
    # 10 levels of 9: 3.5 billion leaves (the old loader: runs until memory runs out)
    "bomb-3.5G": (alias_bomb(10), "aliases expand to more than 100,000 nodes"),
    "deep": (DEEP, "nests more than 100 levels deep"),
    "recursive": (RECURSIVE, "a recursive structure"),
}


def run(argv: list[str]) -> tuple[int, str, float]:
    """Run the CLI; (exit code, stdout + stderr, seconds).  A run past the bound is killed
    and fails the test (that was the alias bomb's behaviour)."""
    started = time.monotonic()
    try:
        done = subprocess.run(
            [sys.executable, "-m", "polyroute", *argv],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            check=False,
            timeout=RUN_TIMEOUT_S,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"polyroute {' '.join(argv)} still running after {RUN_TIMEOUT_S:.0f}s")
    output = (done.stdout + done.stderr).decode(errors="replace")
    return done.returncode, output, time.monotonic() - started


@pytest.mark.parametrize("command", ["validate", "serve"])
@pytest.mark.parametrize("document", list(DOCUMENTS))
def test_hostile_config_is_one_clear_line(tmp_path: Path, command: str, document: str) -> None:
    text, expected = DOCUMENTS[document]
    path = tmp_path / f"{document}.yaml"
    path.write_text(text)
    if command == "validate":
        argv = ["config", "validate", str(path)]
    else:
        argv = ["serve", "--config", str(path), "--host", LOOPBACK, "--port", str(free_port())]
    code, output, elapsed = run(argv)
    assert "Traceback" not in output and "MemoryError" not in output, output[-2000:]
    assert code == 2, output[-2000:]
    lines = output.strip().splitlines()
    assert len(lines) == 1, output[-2000:]
    assert lines[0].startswith(f"polyroute: error: {path}: "), lines[0]
    assert expected in lines[0]
    assert elapsed < QUICK_S, f"{elapsed:.1f}s"
