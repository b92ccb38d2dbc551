"""The candidates of ``bench_stack.py``: the stacks measured and the venv they run in.

The venv, ``~/.cache/polyroute/bench/stack-venv``, is created on first use with
``--system-site-packages`` (uvicorn, aiohttp, httpx, orjson and uvloop are the
gateway's very versions) and granian and hypercorn are pip-installed into it; a
stack whose modules are missing there is skipped.
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

VENV = Path.home() / ".cache" / "polyroute" / "bench" / "stack-venv"
VENV_PACKAGES = [
    "granian", "hypercorn", "uvicorn[standard]", "httpx", "aiohttp", "orjson", "uvloop",
    "starlette",
]  # fmt: skip
VERSIONS_OF = ["uvicorn", "httptools", "h11", "uvloop", "granian", "hypercorn", "aiohttp",
               "httpx", "httpcore", "orjson", "starlette"]  # fmt: skip
INSTALL_TIMEOUT_S = 900.0


# --------------------------------------------------------------------------- the stacks


@dataclass(frozen=True)
class Stack:
    key: str
    server: str  # uvicorn-httptools | uvicorn-h11 | granian | hypercorn | polyroute-serve
    client: str  # aiohttp | aiohttp-default | httpx
    app: str  # raw | starlette | polyroute
    label: str
    needs: tuple[str, ...] = ()  # venv modules; the stack is skipped without them


CURRENT = "uvicorn-httptools/aiohttp/raw"
SERVER_LABEL = {
    "uvicorn-httptools": "uvicorn + httptools",
    "uvicorn-h11": "uvicorn + h11",
    "granian": "granian (ASGI)",
    "granian-rust-st": "granian (ASGI, `task_impl=rust`, `runtime_mode=st`)",
    "hypercorn": "hypercorn",
}
CLIENT_LABEL = {
    "aiohttp": "aiohttp, `limit=0` (gateway's)",
    "aiohttp-default": "aiohttp, default pool",
    "httpx": "httpx, HTTP/1.1 pool",
}


def _relay(server: str, client: str, app: str = "raw") -> Stack:
    needs = tuple(m for m in (server.partition("-")[0], client.partition("-")[0]) if m)
    if app == "starlette":
        needs += ("starlette",)
    label = f"{SERVER_LABEL[server]} · {CLIENT_LABEL[client]} · {app}"
    return Stack(f"{server}/{client}/{app}", server, client, app, label, needs)


STACKS = [
    _relay("uvicorn-httptools", "aiohttp"),
    _relay("uvicorn-httptools", "aiohttp-default"),
    _relay("uvicorn-httptools", "httpx"),
    _relay("uvicorn-h11", "aiohttp"),
    _relay("uvicorn-h11", "httpx"),
    _relay("granian", "aiohttp"),
    _relay("granian-rust-st", "aiohttp"),
    _relay("granian", "httpx"),
    _relay("hypercorn", "aiohttp"),
    _relay("hypercorn", "httpx"),
    _relay("uvicorn-httptools", "aiohttp", "starlette"),
    _relay("granian", "aiohttp", "starlette"),
    Stack("polyroute-serve", "polyroute-serve", "aiohttp", "polyroute",
          "**polyroute serve** (uvicorn + httptools · aiohttp · Starlette + routing + access log)"),
    Stack("granian/aiohttp/polyroute", "granian", "aiohttp", "polyroute",
          "polyroute's app, unchanged, on granian (ASGI) · aiohttp · + access log",
          ("granian",)),
]  # fmt: skip


# --------------------------------------------------------------------------- the venv


def venv_python() -> Path:
    return VENV / "bin" / "python"


def venv_modules(python: Path) -> dict[str, str]:
    """Importable modules in the venv -> their distribution versions ('' if not importable)."""
    code = (
        "import importlib, importlib.metadata as m, json\n"
        f"names = {VERSIONS_OF!r}\n"
        "out = {}\n"
        "for n in names:\n"
        "    try:\n"
        "        importlib.import_module(n)\n"
        "        out[n] = m.version(n)\n"
        "    except Exception:\n"
        "        out[n] = ''\n"
        "print(json.dumps(out))\n"
    )
    proc = subprocess.run([str(python), "-c", code], capture_output=True, text=True,
                          timeout=120, check=False)  # fmt: skip
    if proc.returncode:
        return {}
    import json

    return dict(json.loads(proc.stdout))


def ensure_venv() -> dict[str, str]:
    """Create (or reuse) the throw-away venv; returns the versions found in it."""
    python = venv_python()
    versions = venv_modules(python) if python.exists() else {}
    if versions and all(versions.get(m) for m in ("granian", "hypercorn", "httpx", "uvloop")):
        return versions
    if not python.exists():
        print(f"creating {VENV} ...", flush=True)
        VENV.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(VENV)],
                       check=True, timeout=300)  # fmt: skip
    print(f"pip install {' '.join(VENV_PACKAGES)} (into {VENV}) ...", flush=True)
    try:
        proc = subprocess.run([str(python), "-m", "pip", "install", "-q", *VENV_PACKAGES],
                              timeout=INSTALL_TIMEOUT_S, check=False)  # fmt: skip
        if proc.returncode:
            print("pip install failed; stacks whose packages are missing are skipped", flush=True)
    except subprocess.TimeoutExpired:
        print("pip install timed out; stacks whose packages are missing are skipped", flush=True)
    return venv_modules(python)
