"""Helpers shared by the gateway benchmarks (``bench_gateway.py``, ``bench_compare.py``).

Server processes on free loopback ports (each in its own session, so its whole
process group can be stopped), the benchmark config and request bodies,
percentiles, and the machine facts printed under every results table.
"""

from __future__ import annotations

import contextlib
import os
import platform
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import orjson

HERE = Path(__file__).resolve().parent
LOOPBACK = "127.0.0.1"
PROMPTS = [
    "Hi there! How are you today?",
    "Prove that the derivative of x squared is 2x.",
    "Write a haiku about the sea.",
    "What is the integral of sin(x) from 0 to pi?",
    "Summarise the plot of Hamlet in two sentences.",
    "Translate 'good morning' into French.",
]
MATH_KEYWORDS = ["prove", "integral", "derivative", "theorem"]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    name: str
    popen: subprocess.Popen[bytes]
    url: str
    log_path: Path

    @property
    def pgid(self) -> int:
        """The server's process group (started with ``start_new_session``: its pid)."""
        return self.popen.pid

    def stop(self) -> None:
        """SIGTERM the process group, then SIGKILL; stragglers in the group are killed too."""
        for sig, wait_s in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
            if self.popen.poll() is not None:
                break
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pgid, sig)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.popen.wait(timeout=wait_s)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pgid, signal.SIGKILL)  # children that outlived the leader


def start_server(
    name: str,
    argv: list[str],
    port: int,
    ready: str,
    logs: Path,
    *,
    timeout_s: float = 30.0,
    env: Mapping[str, str] | None = None,
) -> Server:
    """Start ``argv`` in a new session and wait until ``GET ready`` answers 200.

    Raises ``SystemExit`` with the tail of the server's log if it exits or does
    not become ready within ``timeout_s``; the process group is stopped first.
    """
    log_path = logs / f"{name}.log"
    with log_path.open("wb") as log:
        popen = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True, env=None if env is None else dict(env),
        )  # fmt: skip
    server = Server(name, popen, f"http://{LOOPBACK}:{port}", log_path)
    try:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if popen.poll() is not None:
                break
            with contextlib.suppress(OSError), socket.create_connection((LOOPBACK, port), 0.5):
                if get_status(server.url + ready) == 200:
                    return server
            time.sleep(0.1)
    except BaseException:
        server.stop()
        raise
    server.stop()
    raise SystemExit(f"{name} did not start; log:\n{log_path.read_text(errors='replace')[-3000:]}")


def get_status(url: str) -> int:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=2) as resp:
            return int(resp.status)
    except OSError:
        return 0


def bench_config(upstream: str) -> dict[str, Any]:
    """The issue's example config, both models on the fake upstream."""
    model = {"provider": "openai", "base_url": f"{upstream}/v1", "timeout_s": 30}
    return {
        "models": {
            "small": {**model, "input_price_per_mtok": 0.1, "output_price_per_mtok": 0.1},
            "large": {**model, "input_price_per_mtok": 3.0, "output_price_per_mtok": 15.0},
        },
        "signals": {"math": {"type": "keyword", "any": list(MATH_KEYWORDS)}},
        "decisions": [
            {"name": "hard-math", "priority": 10, "when": "math", "models": ["large", "small"],
             "select": "static"},
            {"name": "default", "when": True, "models": ["small", "large"], "select": "cheapest"},
        ],
    }  # fmt: skip


def chat_body(i: int, stream: bool = False, model: str = "auto") -> bytes:
    body: dict[str, Any] = {
        "model": model,
        "messages": [{"role": "user", "content": PROMPTS[i % len(PROMPTS)]}],
        "max_tokens": 16,
    }
    if stream:
        body["stream"] = True
    return orjson.dumps(body)


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q)) if values else float("nan")


def cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return "unknown"


def machine_facts() -> list[str]:
    return [
        f"nproc: {os.cpu_count()}",
        f"cpu: {cpu_model()}",
        f"python: {platform.python_version()} ({sys.executable})",
        f"platform: {platform.platform()}",
        f"date (UTC): {time.strftime('%Y-%m-%d %H:%M', time.gmtime())}",
        "load average at the end (1/5/15 min): " + " ".join(f"{x:.2f}" for x in os.getloadavg()),
    ]
