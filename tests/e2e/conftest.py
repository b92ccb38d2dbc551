"""Real processes for the end-to-end tier: llama-cpp-python servers and the polyroute gateway.

Every server listens on 127.0.0.1 on a free port, is started in its own process
group and is always stopped at teardown.  Readiness waits are bounded.

The SmolLM2-135M GGUF comes from ``$POLYROUTE_TEST_GGUF`` or the cache that
``scripts/install`` fills.  When it (or llama_cpp) is missing the tier skips with
the reason, except under CI, where a missing piece is a failure.
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
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from openai import OpenAI

GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
LLAMA_READY_TIMEOUT_S = 90.0
GATEWAY_READY_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0
LOOPBACK = "127.0.0.1"


def _model_dir() -> Path:
    if os.environ.get("POLYROUTE_MODEL_DIR"):
        return Path(os.environ["POLYROUTE_MODEL_DIR"])
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "polyroute" / "models"


def _unavailable(reason: str) -> None:
    """Skip locally; fail in CI, where every piece must have been installed."""
    if os.environ.get("CI", "").lower() not in {"", "0", "false", "no"}:
        pytest.fail(f"e2e prerequisite missing in CI: {reason}", pytrace=False)
    pytest.skip(f"{reason} (run scripts/install)")


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


def model_entry(upstream: Proc, input_price: float, output_price: float) -> dict[str, Any]:
    return {
        "provider": "openai",
        "base_url": f"{upstream.url}/v1",
        "model": "smollm2",
        "timeout_s": 60,
        "input_price_per_mtok": input_price,
        "output_price_per_mtok": output_price,
    }


@dataclass
class Gateway:
    proc: Proc
    config_path: Path

    @property
    def base_url(self) -> str:
        return f"{self.proc.url}/v1"

    def client(self) -> OpenAI:
        return OpenAI(base_url=self.base_url, api_key="e2e-no-key", max_retries=0, timeout=60.0)

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


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="session")
def gguf() -> Path:
    if importlib.util.find_spec("llama_cpp") is None:
        _unavailable("llama-cpp-python is not installed")
    env_path = os.environ.get("POLYROUTE_TEST_GGUF")
    path = Path(env_path) if env_path else _model_dir() / GGUF_NAME
    if not path.is_file():
        _unavailable(f"SmolLM2 GGUF not found at {path}")
    return path


@pytest.fixture(scope="session")
def e2e_logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("e2e-logs")


LlamaFactory = Callable[[str], Proc]


@pytest.fixture(scope="session")
def llama_factory(gguf: Path, e2e_logs: Path) -> Iterator[LlamaFactory]:
    """Starts llama-cpp-python servers on demand; stops every one at session end."""
    started: list[Proc] = []

    def start(name: str) -> Proc:
        port = free_port()
        argv = [
            sys.executable, "-m", "llama_cpp.server",
            "--model", str(gguf), "--model_alias", "smollm2",
            "--host", LOOPBACK, "--port", str(port),
            "--n_ctx", "2048", "--n_threads", "1", "--seed", "0",
        ]  # fmt: skip
        proc = start_process(name, argv, port, "/v1/models", e2e_logs, LLAMA_READY_TIMEOUT_S)
        started.append(proc)
        return proc

    try:
        yield start
    finally:
        for proc in started:
            proc.stop()


GatewayFactory = Callable[[str, dict[str, Any]], Gateway]


@pytest.fixture(scope="session")
def gateway_factory(e2e_logs: Path) -> Iterator[GatewayFactory]:
    """Writes a config and starts ``polyroute serve`` on it; stops every one at session end."""
    started: list[Proc] = []

    def start(name: str, config: dict[str, Any]) -> Gateway:
        config_path = e2e_logs / f"{name}.yaml"
        config_path.write_text(yaml.safe_dump(config, sort_keys=False))
        port = free_port()
        argv = gateway_argv(config_path, port)
        proc = start_process(name, argv, port, "/readyz", e2e_logs, GATEWAY_READY_TIMEOUT_S)
        started.append(proc)
        return Gateway(proc, config_path)

    try:
        yield start
    finally:
        for proc in started:
            proc.stop()


@pytest.fixture(scope="session")
def llama_small(llama_factory: LlamaFactory) -> Proc:
    return llama_factory("llama-small")


@pytest.fixture(scope="session")
def llama_large(llama_factory: LlamaFactory) -> Proc:
    return llama_factory("llama-large")


def routing_config(small: Proc, large: Proc) -> dict[str, Any]:
    """The issue's example config, pointed at two real llama.cpp servers."""
    return {
        "models": {
            "small": model_entry(small, 0.1, 0.1),
            "large": model_entry(large, 3.0, 15.0),
        },
        "signals": {
            "math": {"type": "keyword", "any": ["prove", "integral", "derivative", "theorem"]},
        },
        "decisions": [
            {
                "name": "hard-math",
                "priority": 10,
                "when": "math",
                "models": ["large", "small"],
                "select": "static",
            },
            {"name": "default", "when": True, "models": ["small", "large"], "select": "cheapest"},
        ],
    }


@pytest.fixture(scope="session")
def gateway(gateway_factory: GatewayFactory, llama_small: Proc, llama_large: Proc) -> Gateway:
    return gateway_factory("gateway", routing_config(llama_small, llama_large))


@pytest.fixture
def client(gateway: Gateway) -> Iterator[OpenAI]:
    with gateway.client() as c:
        yield c
