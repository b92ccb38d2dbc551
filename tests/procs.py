"""Real server processes for the process-level tiers (``tests/e2e``, ``tests/faults``).

Every server listens on 127.0.0.1 on a free port, is started in its own process
group (``start_new_session``) and must be stopped by its owner (``Proc.stop``).
Every wait here is bounded.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from openai import OpenAI

GATEWAY_READY_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0
LOOPBACK = "127.0.0.1"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def http_get(url: str, timeout_s: float = 2.0) -> tuple[int, bytes]:
    """GET on loopback, bypassing any proxy settings; returns (status, body)."""
    try:
        with _NO_PROXY.open(url, timeout=timeout_s) as resp:
            return int(resp.status), resp.read()
    except urllib.error.HTTPError as exc:
        body = exc.read()
        exc.close()
        return int(exc.code), body


@dataclass
class Proc:
    """A server process we started: its own process group, output in ``log_path``."""

    name: str
    popen: subprocess.Popen[bytes]
    port: int
    log_path: Path
    _log_file: Any = field(repr=False, default=None)

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def alive(self) -> bool:
        return self.popen.poll() is None

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def kill(self) -> None:
        """SIGKILL the whole group at once (a crash, as far as clients can tell)."""
        self._signal(signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(timeout=STOP_TIMEOUT_S)

    def stop(self) -> None:
        """SIGTERM the group, wait a bounded time, then SIGKILL; close the log."""
        if self.alive():
            self._signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self._signal(signal.SIGKILL)
                self.popen.wait(timeout=STOP_TIMEOUT_S)
        else:
            self._signal(signal.SIGKILL)  # stray children of a dead leader
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def _signal(self, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.popen.pid, sig)


def start_process(
    name: str,
    argv: list[str],
    port: int,
    ready_path: str,
    log_dir: Path,
    timeout_s: float,
    env: dict[str, str] | None = None,
) -> Proc:
    """Start ``argv`` in a new session and wait until ``GET ready_path`` answers 200."""
    log_path = log_dir / f"{name}.log"
    log_file = log_path.open("wb")
    popen = subprocess.Popen(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=log_file,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        env={**os.environ, **(env or {})},
    )
    proc = Proc(name, popen, port, log_path, log_file)
    try:
        _wait_ready(proc, ready_path, timeout_s)
    except RuntimeError as exc:
        proc.stop()
        pytest.fail(f"{exc}; command: {' '.join(argv)}\n--- {log_path} ---\n{proc.log_tail()}")
    return proc


def _wait_ready(proc: Proc, ready_path: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        if not proc.alive():
            raise RuntimeError(f"{proc.name} exited with {proc.popen.returncode}")
        with contextlib.suppress(OSError):
            status, _ = http_get(proc.url + ready_path)
            if status == 200:
                return
        if time.monotonic() > deadline:
            raise RuntimeError(f"{proc.name} not ready after {timeout_s:.0f}s")
        time.sleep(0.1)


def gateway_argv(config: Path, port: int) -> list[str]:
    """The gateway command: ``python -m polyroute serve`` (or the CLI's ``main``)."""
    args = ["serve", "--config", str(config), "--host", LOOPBACK, "--port", str(port)]
    if importlib.util.find_spec("polyroute.__main__") is not None:
        return [sys.executable, "-m", "polyroute", *args]
    code = "import sys; from polyroute.cli import main; sys.exit(main())"
    return [sys.executable, "-c", code, *args]


def start_gateway(
    name: str,
    config: dict[str, Any],
    log_dir: Path,
    port: int | None = None,
    wrapper: tuple[str, ...] = (),
) -> Proc:
    """Write ``config`` as ``NAME.yaml`` in ``log_dir`` and start ``polyroute serve`` on it
    (``wrapper`` goes before the command, e.g. ``prlimit --nofile=300:300``)."""
    path = log_dir / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False, allow_unicode=True))
    port = port or free_port()
    argv = [*wrapper, *gateway_argv(path, port)]
    return start_process(name, argv, port, "/readyz", log_dir, GATEWAY_READY_TIMEOUT_S)


@contextlib.contextmanager
def gateway_running(name: str, config: dict[str, Any], log_dir: Path) -> Iterator[Proc]:
    """:func:`start_gateway`, stopped when the block ends (however it ends)."""
    proc = start_gateway(name, config, log_dir)
    try:
        yield proc
    finally:
        proc.stop()


def find_trace(records: list[dict[str, Any]], trace_id: str) -> dict[str, Any] | None:
    """The logged trace object holding ``trace_id`` (top level or nested one level)."""
    for record in records:
        for candidate in (record, *(v for v in record.values() if isinstance(v, dict))):
            if candidate.get("trace_id") == trace_id and "attempts" in candidate:
                return candidate
    return None


@dataclass
class Gateway:
    proc: Proc
    config_path: Path

    @property
    def base_url(self) -> str:
        return f"{self.proc.url}/v1"

    def client(self, timeout_s: float = 60.0) -> OpenAI:
        return OpenAI(
            base_url=self.base_url, api_key="e2e-no-key", max_retries=0, timeout=timeout_s
        )

    def log_records(self) -> list[dict[str, Any]]:
        """Every JSON object the gateway logged (one per line), in order."""
        records: list[dict[str, Any]] = []
        for line in self.proc.log_path.read_text(errors="replace").splitlines():
            start = line.find("{")
            if start < 0:
                continue
            with contextlib.suppress(ValueError):
                obj = json.loads(line[start:])
                if isinstance(obj, dict):
                    records.append(obj)
        return records

    def wait_trace(self, trace_id: str, timeout_s: float = 5.0) -> dict[str, Any]:
        """The access-log record of ``trace_id``; a stream's is written when it ends,
        possibly just after the client saw its last byte, so this polls (bounded)."""
        deadline = time.monotonic() + timeout_s
        while True:
            trace = find_trace(self.log_records(), trace_id)
            if trace is not None:
                return trace
            if time.monotonic() > deadline:
                pytest.fail(
                    f"no trace logged for {trace_id} after {timeout_s}s:\n{self.proc.log_tail()}"
                )
            time.sleep(0.05)
