"""The servers ``bench_compare.py`` measures: fake upstreams, polyroute and LiteLLM's proxy.

LiteLLM runs from its own throw-away virtual environment, created and
``pip install``-ed on first use and reused after; ``Fleet`` starts every server
on a free loopback port and stops, at the end, each one still running.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import yaml
from _harness import HERE, MATH_KEYWORDS, PROMPTS, Server, bench_config, free_port, start_server

REQUEST_TIMEOUT_S = 30.0
DEFAULT_VENV = Path.home() / ".cache" / "polyroute" / "bench" / "litellm-venv"
LITELLM_INSTALL_TIMEOUT_S = 1200.0
LITELLM_START_TIMEOUT_S = 240.0


class LiteLLMUnavailable(Exception):
    """LiteLLM could not be installed or started; the run goes on without it."""


# --------------------------------------------------------------------------- LiteLLM venv


def _venv_python(venv: Path) -> Path:
    return venv / "bin" / "python"


def _litellm_versions(venv: Path) -> dict[str, str] | None:
    """Versions of litellm and its proxy's server stack in ``venv``, or None if incomplete."""
    python = _venv_python(venv)
    if not python.exists() or not (venv / "bin" / "litellm").exists():
        return None
    code = (
        "import importlib.metadata as m, json\n"
        "import fastapi, uvicorn, backoff, apscheduler, orjson\n"
        "print(json.dumps({p: m.version(p) for p in "
        "('litellm', 'uvicorn', 'fastapi', 'httpx', 'aiohttp')}))"
    )
    try:
        out = subprocess.run(
            [str(python), "-c", code],
            capture_output=True,
            timeout=120,
            check=True,
            env=_clean_env(),
        )
    except (subprocess.SubprocessError, OSError):
        return None
    versions: dict[str, str] = orjson.loads(out.stdout.strip().splitlines()[-1])
    return versions


def _clean_env() -> dict[str, str]:
    """This environment without what would leak into another interpreter or into LiteLLM."""
    drop = {"PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "LITELLM_MASTER_KEY", "DATABASE_URL"}
    return {k: v for k, v in os.environ.items() if k not in drop}


def ensure_litellm(venv: Path, spec: str) -> dict[str, str]:
    """LiteLLM's proxy in its own venv: reuse it if complete, else create it and pip install."""
    versions = _litellm_versions(venv)
    if versions is not None:
        print(f"LiteLLM: reusing {venv} (litellm {versions['litellm']})", flush=True)
        return versions
    venv.parent.mkdir(parents=True, exist_ok=True)
    log_path = venv.parent / "litellm-install.log"
    print(f"LiteLLM: installing {spec!r} into {venv} (log: {log_path}) ...", flush=True)
    t0 = time.monotonic()
    with log_path.open("wb") as log:
        try:
            if not _venv_python(venv).exists():
                subprocess.run(
                    [sys.executable, "-m", "venv", str(venv)],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    timeout=300,
                    check=True,
                )
            subprocess.run(
                [str(_venv_python(venv)), "-m", "pip", "install", spec],
                stdout=log,
                stderr=subprocess.STDOUT,
                timeout=LITELLM_INSTALL_TIMEOUT_S,
                check=True,
                env=_clean_env(),
            )
        except (subprocess.SubprocessError, OSError) as exc:
            lines = log_path.read_text(errors="replace").splitlines()
            reason = next((ln for ln in reversed(lines) if ln.startswith("ERROR")), str(exc))
            tail = "\n".join(lines[-15:])
            msg = f"pip install {spec!r} failed: {reason} (log: {log_path})\n{tail}"
            raise LiteLLMUnavailable(msg) from exc
    versions = _litellm_versions(venv)
    if versions is None:
        raise LiteLLMUnavailable(f"{spec!r} installed but `litellm` or its proxy deps are missing")
    print(f"LiteLLM: installed litellm {versions['litellm']} in {time.monotonic() - t0:.0f} s")
    return versions


def litellm_config(upstream: str) -> dict[str, Any]:
    params = {
        "model": "openai/fake",
        "api_base": f"{upstream}/v1",
        "api_key": "unused",
        "timeout": REQUEST_TIMEOUT_S,
    }
    return {
        "model_list": [
            {"model_name": name, "litellm_params": dict(params)} for name in ("small", "large")
        ],
        "litellm_settings": {
            "num_retries": 0,
            "request_timeout": REQUEST_TIMEOUT_S,
            "callbacks": [],
            "success_callback": [],
            "failure_callback": [],
            "telemetry": False,  # a no-op in current releases, honoured by older ones
            "set_verbose": False,
        },
        "router_settings": {"num_retries": 0},
        "general_settings": {},
    }


def litellm_model(i: int) -> str:
    """The model polyroute's keyword rule picks for prompt ``i`` (LiteLLM is told it)."""
    prompt = PROMPTS[i % len(PROMPTS)].lower()
    return "large" if any(word in prompt for word in MATH_KEYWORDS) else "small"


# --------------------------------------------------------------------------- servers


@dataclass
class Fleet:
    """Servers started by this run; ``stop_all`` stops every one still running."""

    logs: Path
    venv: Path
    servers: list[Server] = field(default_factory=list)

    def upstream(self, name: str, delay_s: float = 0.0) -> Server:
        port = free_port()
        argv = [sys.executable, str(HERE / "fake_upstream.py"), "--port", str(port)]
        if delay_s:
            argv += ["--delay-s", str(delay_s)]
        return self._start(name, argv, port, "/healthz", 30.0, None)

    def polyroute(self, name: str, upstream: Server) -> Server:
        config = self.logs / f"{name}.yaml"
        config.write_text(yaml.safe_dump(bench_config(upstream.url), sort_keys=False))
        port = free_port()
        argv = [
            sys.executable,
            "-m",
            "polyroute",
            "serve",
            "--config",
            str(config),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ]
        return self._start(name, argv, port, "/readyz", 60.0, None)

    def litellm(self, name: str, upstream: Server) -> Server:
        config = self.logs / f"{name}.yaml"
        config.write_text(yaml.safe_dump(litellm_config(upstream.url), sort_keys=False))
        port = free_port()
        argv = [
            str(self.venv / "bin" / "litellm"),
            "--config",
            str(config),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--num_workers",
            "1",
        ]
        env = {
            **_clean_env(),
            "LITELLM_LOCAL_MODEL_COST_MAP": "True",
            "LITELLM_TELEMETRY": "False",
            # no master key: recent releases refuse to start without one unless told this
            "LITELLM_DANGEROUSLY_PERMIT_WEAK_OR_UNSET_MASTER_KEY": "true",
        }
        try:
            return self._start(name, argv, port, "/health/liveliness", LITELLM_START_TIMEOUT_S, env)
        except SystemExit as exc:
            lines = [ln.strip() for ln in str(exc).splitlines()[1:] if ln.strip()]
            last = lines[-1] if lines else "no output"
            msg = f"`litellm --config` exited or was not ready in {LITELLM_START_TIMEOUT_S:.0f} s"
            raise LiteLLMUnavailable(f"{msg}; its last line: {last}\n{exc}") from None

    def _start(
        self,
        name: str,
        argv: list[str],
        port: int,
        ready: str,
        timeout_s: float,
        env: dict[str, str] | None,
    ) -> Server:
        print(f"starting {name} on port {port} ...", flush=True)
        server = start_server(name, argv, port, ready, self.logs, timeout_s=timeout_s, env=env)
        self.servers.append(server)
        return server

    def stop(self, server: Server) -> None:
        server.stop()
        with contextlib.suppress(ValueError):
            self.servers.remove(server)

    def stop_all(self) -> None:
        while self.servers:
            self.servers.pop().stop()


@contextlib.contextmanager
def fleet(logs: Path, venv: Path) -> Iterator[Fleet]:
    f = Fleet(logs, venv)
    try:
        yield f
    finally:
        f.stop_all()
