"""Junk router artifacts through real processes: ``polyroute config validate`` and ``serve``
refuse them promptly, exit non-zero and print one clear line (no traceback, no hang)."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from procs import GATEWAY_READY_TIMEOUT_S, free_port, gateway_argv, start_process
from routers.artifact_junk import copy, edit_arrays, make_fifo, release_fifo, train

from polyroute.dataset import RoutingDataset

PROMPT_S = 30.0  # "promptly": a process that blocks on a FIFO would never end by itself


@pytest.fixture(scope="module")
def good(tmp_path_factory: pytest.TempPathFactory, toy: RoutingDataset) -> Path:
    return train("knn", toy, tmp_path_factory.mktemp("procs") / "knn")


def drop_a_feature(artifact: Path) -> None:
    edit_arrays(artifact, lambda a: a.update({"state/x": a["state/x"][:, :-1]}))


def fifo_arrays(artifact: Path) -> None:
    make_fifo(artifact / "arrays.npz")


CORRUPT: dict[str, tuple[Callable[[Path], None], str]] = {
    "fifo": (fifo_arrays, "arrays.npz: must be a regular file"),
    "bad-shape": (drop_a_feature, "'state/x'"),
}


def write_config(tmp_path: Path, artifact: Path) -> Path:
    model = {"provider": "openai", "base_url": "http://127.0.0.1:9/v1", "model": "m"}
    config = {
        "models": {"small": dict(model), "big": dict(model)},
        "decisions": [{"name": "learned", "models": ["small", "big"], "select": {"router": "art"}}],
    }
    copy(artifact, tmp_path / "art")
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def run(argv: list[str]) -> tuple[int, str, float]:
    """Run ``argv`` (bounded); returns (exit code, stdout + stderr, seconds)."""
    start = time.monotonic()
    try:
        done = subprocess.run(
            argv,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=PROMPT_S,
            check=False,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"{' '.join(argv)} still running after {PROMPT_S:.0f}s (it hangs)")
    return done.returncode, done.stdout + done.stderr, time.monotonic() - start


def assert_one_clear_error(code: int, output: str, needle: str) -> None:
    assert code != 0, output
    assert "Traceback" not in output, output
    errors = [line for line in output.splitlines() if "error" in line.lower()]
    assert len(errors) == 1, output
    assert errors[0].startswith("polyroute: error: ") and needle in errors[0], output


def validate(config: Path) -> tuple[int, str, float]:
    return run([sys.executable, "-m", "polyroute", "config", "validate", str(config)])


def test_validate_accepts_the_good_artifact(good: Path, tmp_path: Path) -> None:
    code, output, _ = validate(write_config(tmp_path, good))
    assert code == 0, output


def test_serve_starts_on_the_good_artifact(good: Path, tmp_path: Path) -> None:
    config = write_config(tmp_path, good)
    port = free_port()
    argv = gateway_argv(config, port)
    proc = start_process("gateway", argv, port, "/healthz", tmp_path, GATEWAY_READY_TIMEOUT_S)
    proc.stop()


@pytest.mark.parametrize("kind", sorted(CORRUPT))
def test_validate_refuses_junk_promptly(good: Path, tmp_path: Path, kind: str) -> None:
    config = write_config(tmp_path, good)
    corrupt, needle = CORRUPT[kind]
    corrupt(tmp_path / "art")
    try:
        code, output, seconds = validate(config)
    finally:
        release_fifo(tmp_path / "art" / "arrays.npz")
    assert_one_clear_error(code, output, needle)
    assert str(tmp_path / "art") in output
    assert seconds < PROMPT_S


@pytest.mark.parametrize("kind", sorted(CORRUPT))
def test_serve_refuses_junk_with_one_line(good: Path, tmp_path: Path, kind: str) -> None:
    config = write_config(tmp_path, good)
    corrupt, needle = CORRUPT[kind]
    corrupt(tmp_path / "art")
    try:
        code, output, _ = run(gateway_argv(config, free_port()))
    finally:
        release_fifo(tmp_path / "art" / "arrays.npz")
    assert_one_clear_error(code, output, needle)
