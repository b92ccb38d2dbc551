"""Side by side, in one run: the same fast upstream direct, behind polyroute, behind LiteLLM.

    python benchmarks/bench_compare.py                # full run, about 5-10 minutes
    python benchmarks/bench_compare.py --quick        # smoke run: small counts, no 5,000 burst
    python benchmarks/bench_compare.py --no-litellm   # polyroute vs direct only

One benchmark measures at a time: the script holds ``/tmp/polyroute-bench.lock``
(taking it itself, or inheriting it from ``flock /tmp/polyroute-bench.lock python ...``).

The upstream is ``benchmarks/fake_upstream.py`` (raw ASGI on uvicorn: fixed answers,
no model).  In front of it, each on a free 127.0.0.1 port with one worker:

* ``polyroute serve`` with ``model="auto"`` and the keyword rule of
  ``bench_gateway.py`` (math prompts -> ``large``, the rest -> ``small``; both
  models on the same upstream);
* LiteLLM's proxy (``litellm --config``), installed by this script into its own
  throw-away virtual environment (``~/.cache/polyroute/bench/litellm-venv``,
  reused when present): models ``small`` and ``large`` on the same upstream, no
  master key (its local-development switch), retries off (``num_retries: 0`` in
  ``litellm_settings`` and ``router_settings``), no callbacks, the bundled cost
  map (``LITELLM_LOCAL_MODEL_COST_MAP=True``, no internet), telemetry off.
  LiteLLM has no keyword rule, so the client names the model polyroute would pick.

Measured, from an aiohttp client in this process (uvloop):

1. sequential latency, one keep-alive connection per target, interleaved request
   by request (direct, polyroute, LiteLLM, rotating the order each round);
   added latency = percentile through a proxy - the same percentile direct;
2. 32 concurrent, closed loop, a bounded burst per target: throughput, p50/p99,
   server CPU per request;
3. errors: any non-200, malformed body, stream without ``[DONE]``, timeout or
   connection error, in every phase;
4. resident memory: VmRSS summed over the server's process group (``/proc``),
   idle after start-up and after the load;
5. streaming time to first byte (first body chunk of a ``stream=true`` chat),
   sequential and interleaved like 1;
6. N requests (default 5,000) in flight at once against a second upstream that
   answers after 1.5 s, from one session with an unlimited connection pool:
   every one must succeed through polyroute, and its RSS must stay flat over
   repeated bursts: RSS after burst 2 within 10 % of RSS after burst 1, and
   (with 3 or more bursts) after the last burst within 10 % of the one before.
   LiteLLM gets one such burst (``--litellm-inflight-bursts``); every burst is
   bounded by ``--inflight-cap-s``.

Prints a markdown table with the ratios and PASS/FAIL against the targets
(polyroute's added latency at p50 and p99 at least 10x lower than LiteLLM's,
throughput at least 10x, zero errors) and writes it, with the command, machine
facts and versions, to ``benchmarks/RESULTS_compare.md``.  Every loop is bounded
in count and time; every server is stopped (its process group: SIGTERM, then
SIGKILL), also on errors and Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fcntl
import math
import os
import resource
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn
from urllib.parse import urlsplit

import aiohttp
import orjson
import yaml
from _harness import (
    HERE,
    MATH_KEYWORDS,
    PROMPTS,
    Server,
    bench_config,
    chat_body,
    free_port,
    machine_facts,
    pct,
    start_server,
)

RESULTS = HERE / "RESULTS_compare.md"
CHAT = "/v1/chat/completions"
CONCURRENCY = 32
PHASE_TIME_CAP_S = 180.0
REQUEST_TIMEOUT_S = 30.0
SETTLE_S = 3.0
TARGET_RATIO = 10.0
FLAT_TOLERANCE = 0.10
DEFAULT_VENV = Path.home() / ".cache" / "polyroute" / "bench" / "litellm-venv"
LITELLM_INSTALL_TIMEOUT_S = 1200.0
LITELLM_START_TIMEOUT_S = 240.0
LOCK = Path("/tmp/polyroute-bench.lock")
LOCK_WAIT_S = 1800.0
NAMES = ("direct", "polyroute", "litellm")
JSON_HEADERS = {"content-type": "application/json"}
METHOD = """\
The same fast OpenAI-compatible upstream (`benchmarks/fake_upstream.py`) is measured direct,
through `polyroute serve` (one worker, `model="auto"`, a keyword rule sends math prompts to
`large` and the rest to `small`, one JSON access-log line per request) and through LiteLLM's
proxy (`litellm --config`, one worker, no master key, retries off in `litellm_settings` and
`router_settings`, no callbacks, local cost map, its default logging; the client names the
model, since LiteLLM has no keyword rule).  The client is aiohttp on uvloop in the harness
process; everything shares the same 2 cores.  Added latency is a percentile through the proxy
minus the same percentile direct, from interleaved rounds; after every request the harness
polls until no server has used CPU for {quiet} ms (LiteLLM keeps a core busy for up to several
ms after each response; without the wait that work lands on the next target's request).
TTFB is the time to the first body chunk of a `stream=true` chat.  RSS is VmRSS summed over
the server's process group (for `direct`, the fake upstream's).  An error is any non-200,
malformed body, stream without `[DONE]`, timeout or connection failure.  The in-flight test
starts every request at once, each on its own connection from a bare asyncio HTTP/1.1 client
(a fifth of aiohttp's client CPU per request, so that the server is what is measured), against
a second upstream that answers after {delay} s, through fresh server processes; RSS is read
{settle} s after each burst, once the connections are closed."""


class LiteLLMUnavailable(Exception):
    """LiteLLM could not be installed or started; the run goes on without it."""


# --------------------------------------------------------------------------- /proc


def _proc_stat(pid: str) -> tuple[int, float] | None:
    """(process group, CPU seconds) of ``pid``, or None if it is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return None
    fields = raw[raw.rindex(b")") + 2 :].split()
    ticks = int(fields[11]) + int(fields[12])  # utime + stime
    return int(fields[2]), ticks / os.sysconf("SC_CLK_TCK")


def group_pids(pgid: int) -> list[str]:
    pids = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            stat = _proc_stat(pid)
            if stat is not None and stat[0] == pgid:
                pids.append(pid)
    return pids


def _rss_kib(pid: str) -> int:
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


@dataclass
class GroupUsage:
    rss_kib: int
    cpu_s: float
    procs: int

    @property
    def rss_mib(self) -> float:
        return self.rss_kib / 1024


def group_usage(pgid: int) -> GroupUsage:
    """VmRSS and CPU time summed over every process of the group (``/proc``)."""
    pids = group_pids(pgid)
    cpu = sum(stat[1] for pid in pids if (stat := _proc_stat(pid)) is not None)
    return GroupUsage(sum(_rss_kib(pid) for pid in pids), cpu, len(pids))


def _fd_count(pid: str) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return 0


def _run_ns(pids: list[str]) -> int:
    """CPU time (ns, every thread) of ``pids`` so far, from ``/proc/PID/task/TID/schedstat``."""
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            for tid in os.listdir(f"/proc/{pid}/task"):
                with contextlib.suppress(OSError, ValueError, IndexError):
                    total += int(Path(f"/proc/{pid}/task/{tid}/schedstat").read_text().split()[0])
    return total


def wait_quiet(pids: list[str], quiet_s: float, cap_s: float = 0.025) -> None:
    """Return once ``pids`` have used no CPU for ``quiet_s`` (at most ``cap_s``), polling.

    Polling (not sleeping) keeps this process on a core, so the next request does
    not pay for waking an idle machine; it only waits out work a server does after
    its answer (LiteLLM: up to several ms of CPU per request).
    """
    if quiet_s <= 0:
        return
    start = time.perf_counter()
    last, changed = _run_ns(pids), start
    while (now := time.perf_counter()) - start < cap_s:
        ns = _run_ns(pids)
        if ns != last:
            last, changed = ns, now
        elif now - changed >= quiet_s:
            return


class PeakSampler:
    """A background thread: peak RSS and open fds of some process groups, every ``interval`` s."""

    def __init__(self, groups: dict[str, int], interval: float = 0.25) -> None:
        self.pids = {name: group_pids(pgid) for name, pgid in groups.items()}
        self.peak_rss_kib: Counter[str] = Counter()
        self.peak_fds: Counter[str] = Counter()
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            for name, pids in self.pids.items():
                rss = sum(_rss_kib(p) for p in pids)
                fds = sum(_fd_count(p) for p in pids)
                self.peak_rss_kib[name] = max(self.peak_rss_kib[name], rss)
                self.peak_fds[name] = max(self.peak_fds[name], fds)
            self._stop.wait(self.interval)

    def __enter__(self) -> PeakSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


@contextlib.contextmanager
def bench_lock(path: Path, wait_s: float) -> Iterator[str]:
    """Hold the machine's benchmark lock; yields how it is held.

    Under ``flock PATH python ...`` the lock's descriptor is inherited and already
    held: nothing to do.  Otherwise take it here, waiting at most ``wait_s``.
    """
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            if os.readlink(f"/proc/self/fd/{fd}") == str(path):
                yield f"held by the caller (`flock {path}`)"
                return
    with path.open("a") as handle:
        deadline = time.monotonic() + wait_s
        for attempt in range(int(wait_s) + 2):
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise SystemExit(f"{path} still held after {wait_s:.0f} s; try later") from None
                if attempt == 0:
                    print(f"waiting for {path} (another benchmark is running) ...", flush=True)
                time.sleep(1.0)
        try:
            yield f"taken by the harness ({path})"
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def raise_nofile() -> tuple[int, int]:
    """Soft RLIMIT_NOFILE up to the hard limit (children inherit it); returns the new limits."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)


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


def _on_sigterm(signum: int, frame: object) -> NoReturn:
    raise KeyboardInterrupt(f"signal {signum}")


# --------------------------------------------------------------------------- requests


def check_chat(status: int, body: bytes) -> str | None:
    """None for a well-formed chat completion, else the error's label."""
    if status != 200:
        return f"HTTP {status}"
    try:
        content = orjson.loads(body)["choices"][0]["message"]["content"]
    except (orjson.JSONDecodeError, KeyError, IndexError, TypeError):
        return "malformed body"
    return None if isinstance(content, str) and content else "malformed body"


def check_stream(status: int, body: bytes) -> str | None:
    """None for a well-formed SSE chat stream (content chunks, then ``[DONE]``), else a label."""
    if status != 200:
        return f"HTTP {status}"
    events = [line[5:].strip() for line in body.split(b"\n") if line.startswith(b"data:")]
    if not events or events[-1] != b"[DONE]":
        return "stream without [DONE]"
    text = []
    try:
        for event in events[:-1]:
            chunk = orjson.loads(event)
            if "error" in chunk:
                return "stream error event"
            if chunk.get("choices"):
                text.append(chunk["choices"][0].get("delta", {}).get("content") or "")
    except (orjson.JSONDecodeError, AttributeError, IndexError, TypeError):
        return "malformed stream"
    return None if "".join(text) else "stream without content"


@dataclass
class Result:
    ms: float
    ttfb_ms: float
    error: str | None
    decision: str = ""


async def send(session: aiohttp.ClientSession, url: str, body: bytes, stream: bool) -> Result:
    """One POST, fully read and checked; never raises for an HTTP or network failure."""
    t0 = time.perf_counter()
    ttfb = math.nan
    try:
        async with session.post(url, data=body, headers=JSON_HEADERS) as r:
            if stream:
                first = await r.content.readany()
                ttfb = (time.perf_counter() - t0) * 1000
                chunks = [first]
                async for chunk in r.content.iter_any():
                    chunks.append(chunk)
                data = b"".join(chunks)
            else:
                data = await r.read()
            status = r.status
            decision = r.headers.get("x-polyroute-decision", "")
    except TimeoutError:
        return Result((time.perf_counter() - t0) * 1000, ttfb, "timeout")
    except aiohttp.ClientError as exc:
        return Result((time.perf_counter() - t0) * 1000, ttfb, type(exc).__name__)
    ms = (time.perf_counter() - t0) * 1000
    error = check_stream(status, data) if stream else check_chat(status, data)
    return Result(ms, ttfb, error, decision)


@dataclass
class Target:
    name: str
    url: str  # the chat completions URL
    pgid: int  # the server's process group (direct: the upstream's)
    bodies: list[bytes]
    stream_bodies: list[bytes]

    def body(self, i: int, stream: bool = False) -> bytes:
        pool = self.stream_bodies if stream else self.bodies
        return pool[i % len(pool)]


def make_target(name: str, server: Server) -> Target:
    """Requests for ``server`` as ``name`` sees them (LiteLLM is told the model)."""
    model: Callable[[int], str] = litellm_model if name == "litellm" else (lambda i: "auto")
    n = len(PROMPTS)
    return Target(
        name,
        server.url + CHAT,
        server.pgid,
        [chat_body(i, False, model(i)) for i in range(n)],
        [chat_body(i, True, model(i)) for i in range(n)],
    )


def _session(limit: int, timeout_s: float = REQUEST_TIMEOUT_S) -> aiohttp.ClientSession:
    connector = aiohttp.TCPConnector(limit=limit, keepalive_timeout=60)
    return aiohttp.ClientSession(
        connector=connector, timeout=aiohttp.ClientTimeout(total=timeout_s), trust_env=False
    )


@dataclass
class Errors:
    """Every failed request, by target and phase."""

    by_target: dict[str, Counter[str]] = field(default_factory=dict)

    def add(self, target: str, phase: str, error: str) -> None:
        self.by_target.setdefault(target, Counter())[f"{phase}: {error}"] += 1

    def total(self, target: str) -> int:
        return sum(self.by_target.get(target, Counter()).values())


# --------------------------------------------------------------------------- phases


async def sequential(
    targets: list[Target],
    n: int,
    stream: bool,
    errors: Errors,
    quiet_s: float,
    warmup: int = 50,
) -> dict[str, Any]:
    """Interleaved request by request, rotating the order each round; one connection each.

    After every request the harness waits until no server process has used CPU for
    ``quiet_s`` (at most 25 ms), so that work a server does after answering (LiteLLM
    spends up to several ms of CPU per request after its response) does not land on
    the next target's request.
    """
    phase = "streaming" if stream else "sequential"
    lat: dict[str, list[float]] = {t.name: [] for t in targets}
    ttfb: dict[str, list[float]] = {t.name: [] for t in targets}
    decisions: Counter[str] = Counter()
    pids = [pid for t in targets for pid in group_pids(t.pgid)]
    sessions = [_session(1) for _ in targets]
    pairs = list(zip(targets, sessions, strict=True))
    try:
        for i in range(min(warmup, n)):  # connections, caches, lazy imports
            for t, s in pairs:
                res = await send(s, t.url, t.body(i, stream), stream)
                if res.error:
                    errors.add(t.name, f"{phase} warm-up", res.error)
                wait_quiet(pids, quiet_s)
        deadline = time.monotonic() + PHASE_TIME_CAP_S
        rounds = 0
        for i in range(n):
            if time.monotonic() > deadline:
                break
            k = i % len(pairs)
            for t, s in pairs[k:] + pairs[:k]:
                res = await send(s, t.url, t.body(i, stream), stream)
                wait_quiet(pids, quiet_s)
                if res.error:
                    errors.add(t.name, phase, res.error)
                    continue
                lat[t.name].append(res.ms)
                ttfb[t.name].append(res.ttfb_ms)
                if t.name == "polyroute":
                    decisions[res.decision] += 1
            rounds += 1
    finally:
        for s in sessions:
            await s.close()
    return {"lat": lat, "ttfb": ttfb, "rounds": rounds, "decisions": decisions}


async def closed_loop(target: Target, n: int, errors: Errors) -> dict[str, Any]:
    """``n`` requests from ``CONCURRENCY`` workers on one pool; throughput and server CPU."""
    latencies: list[float] = []
    failed = 0
    counter = iter(range(n))
    deadline = time.monotonic() + PHASE_TIME_CAP_S

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal failed
        for i in counter:
            if time.monotonic() > deadline:
                return
            res = await send(session, target.url, target.body(i), False)
            if res.error:
                failed += 1
                errors.add(target.name, f"{CONCURRENCY} concurrent", res.error)
            else:
                latencies.append(res.ms)

    async with _session(CONCURRENCY) as session:
        warm = await asyncio.gather(
            *(send(session, target.url, target.body(i), False) for i in range(CONCURRENCY * 4))
        )
        for res in warm:
            if res.error:
                errors.add(target.name, f"{CONCURRENCY} concurrent warm-up", res.error)
        cpu0, client0 = group_usage(target.pgid).cpu_s, time.process_time()
        t0 = time.perf_counter()
        await asyncio.gather(*(worker(session) for _ in range(CONCURRENCY)))
        elapsed = time.perf_counter() - t0
        cpu1, client1 = group_usage(target.pgid).cpu_s, time.process_time()
    done = len(latencies) + failed
    return {
        "n": len(latencies),
        "errors": failed,
        "elapsed": elapsed,
        "rps": len(latencies) / elapsed,
        "p50": pct(latencies, 50),
        "p99": pct(latencies, 99),
        "cpu_ms_per_req": 1000 * (cpu1 - cpu0) / max(done, 1),
        "client_cpu_ms_per_req": 1000 * (client1 - client0) / max(done, 1),
    }


def _dechunk(data: bytes) -> bytes:
    """The payload of an HTTP/1.1 chunked body (raises ValueError if it is cut short)."""
    out: list[bytes] = []
    pos = 0
    while True:
        eol = data.index(b"\r\n", pos)
        size = int(data[pos:eol].split(b";", 1)[0], 16)
        if size == 0:
            return b"".join(out)
        start = eol + 2
        if start + size > len(data):
            raise ValueError("chunk cut short")
        out.append(data[start : start + size])
        pos = start + size + 2


def parse_response(raw: bytes) -> tuple[int, bytes]:
    """(status, body) of one HTTP/1.1 response read to EOF (``Connection: close``)."""
    head, sep, rest = raw.partition(b"\r\n\r\n")
    if not sep:
        raise ValueError("no complete header")
    lines = head.split(b"\r\n")
    status = int(lines[0].split(b" ", 2)[1])
    headers = {}
    for line in lines[1:]:
        key, _, value = line.partition(b":")
        headers[key.strip().lower()] = value.strip().lower()
    if headers.get(b"transfer-encoding") == b"chunked":
        return status, _dechunk(rest)
    length = headers.get(b"content-length")
    if length is not None and len(rest) < int(length):
        raise ValueError("body cut short")
    return status, rest if length is None else rest[: int(length)]


async def raw_post(host: str, port: int, request: bytes, t0: float) -> Result:
    """One POST on a fresh connection (``Connection: close``), read to EOF and checked.

    A bare asyncio client: per request it costs the client about a fifth of what an
    aiohttp session does, so the in-flight test measures the server, not the client.
    """
    writer = None
    try:
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(request)
        raw = await reader.read()
        status, body = parse_response(raw)
        error = check_chat(status, body)
    except TimeoutError:
        error = "timeout"
    except (OSError, ValueError, IndexError) as exc:
        error = type(exc).__name__
    finally:
        if writer is not None:
            writer.close()
    return Result((time.perf_counter() - t0) * 1000, math.nan, error)


async def inflight_burst(
    target: Target, n: int, cap_s: float, errors: Errors, label: str
) -> dict[str, Any]:
    """``n`` requests started at once, one fresh connection each, bounded by ``cap_s``.

    Latency is from the burst's start to each answer.  Requests still unanswered at
    ``cap_s`` are cancelled and counted as errors ("unfinished at the cap").
    """
    url = urlsplit(target.url)
    host, port = url.hostname or "127.0.0.1", url.port or 80
    requests = []
    for i in range(len(PROMPTS)):
        body = target.body(i)
        head = (
            f"POST {url.path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
            "Connection: close\r\n\r\n"
        )
        requests.append(head.encode() + body)
    latencies: list[float] = []
    client0 = time.process_time()
    t0 = time.perf_counter()
    tasks = [
        asyncio.create_task(raw_post(host, port, requests[i % len(requests)], t0)) for i in range(n)
    ]
    done, pending = await asyncio.wait(tasks, timeout=cap_s)
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    elapsed = time.perf_counter() - t0
    failed: Counter[str] = Counter()
    for task in done:
        res = task.result()
        if res.error:
            failed[res.error] += 1
        else:
            latencies.append(res.ms)
    if pending:
        failed["unfinished at the cap"] += len(pending)
    for error, count in failed.items():
        for _ in range(count):
            errors.add(target.name, label, error)
    return {
        "n": n,
        "ok": len(latencies),
        "errors": dict(failed),
        "elapsed": elapsed,
        "p50": pct(latencies, 50),
        "p99": pct(latencies, 99),
        "max": max(latencies) if latencies else math.nan,
        "client_cpu_s": time.process_time() - client0,
        "capped": bool(pending),
    }


# --------------------------------------------------------------------------- orchestration


@dataclass
class Run:
    args: argparse.Namespace
    errors: Errors = field(default_factory=Errors)
    notes: list[str] = field(default_factory=list)
    litellm_versions: dict[str, str] | None = None
    litellm_problem: str | None = None
    seq: dict[str, Any] = field(default_factory=dict)
    stream: dict[str, Any] = field(default_factory=dict)
    loops: dict[str, dict[str, Any]] = field(default_factory=dict)
    rss_idle: dict[str, GroupUsage] = field(default_factory=dict)
    rss_loaded: dict[str, GroupUsage] = field(default_factory=dict)
    inflight: dict[str, dict[str, Any]] = field(default_factory=dict)
    elapsed_s: float = 0.0
    lock: str = "not taken (--no-lock)"

    @property
    def names(self) -> list[str]:
        return [n for n in NAMES if n != "litellm" or self.litellm_problem is None]


def litellm_failed(run: Run, problem: str) -> None:
    run.litellm_problem = problem.strip().splitlines()[0][:300] if problem.strip() else "unknown"
    print(
        f"\n*** LiteLLM unavailable: {problem}\n*** continuing with polyroute vs direct\n",
        flush=True,
    )


def phase_fast(run: Run, fl: Fleet) -> None:
    """Phases 1-5 against the fast upstream; the servers are stopped at the end."""
    import uvloop

    args = run.args
    upstream = fl.upstream("upstream")
    gateway = fl.polyroute("polyroute", upstream)
    servers = {"direct": upstream, "polyroute": gateway}
    if run.litellm_problem is None:
        try:
            servers["litellm"] = fl.litellm("litellm", upstream)
        except LiteLLMUnavailable as exc:
            litellm_failed(run, f"LiteLLM proxy did not start: {exc}")
    run.rss_idle = {name: group_usage(s.pgid) for name, s in servers.items()}
    targets = [make_target(name, servers[name]) for name in run.names]

    quiet_s = args.quiet_ms / 1000

    async def measure() -> None:
        print(f"sequential: {args.sequential} interleaved rounds ...", flush=True)
        run.seq = await sequential(targets, args.sequential, False, run.errors, quiet_s)
        print(f"streaming: {args.streaming} interleaved rounds ...", flush=True)
        run.stream = await sequential(targets, args.streaming, True, run.errors, quiet_s)
        for t in targets:
            print(f"{CONCURRENCY} concurrent: {args.burst} requests to {t.name} ...", flush=True)
            run.loops[t.name] = await closed_loop(t, args.burst, run.errors)

    uvloop.run(measure())
    time.sleep(args.settle_s)
    run.rss_loaded = {name: group_usage(s.pgid) for name, s in servers.items()}
    for server in [*servers.values()][::-1]:
        fl.stop(server)


def phase_inflight(run: Run, fl: Fleet) -> None:
    """Phase 6: ``--inflight`` requests at once against an upstream that takes ``--delay-s``."""
    import uvloop

    args = run.args
    upstream = fl.upstream("slow-upstream", args.inflight_delay_s)
    subjects: list[tuple[str, Callable[[], Server], int]] = [
        ("direct", lambda: upstream, 1),
        ("polyroute", lambda: fl.polyroute("polyroute-slow", upstream), args.inflight_bursts),
    ]
    if run.litellm_problem is None:
        subjects.append(
            ("litellm", lambda: fl.litellm("litellm-slow", upstream), args.litellm_inflight_bursts)
        )
    for name, start, bursts in subjects:
        try:
            server = start()
        except LiteLLMUnavailable as exc:
            run.notes.append(f"LiteLLM for the in-flight test did not start: {exc}")
            continue
        target = make_target(name, server)
        record: dict[str, Any] = {
            "bursts": [],
            "rss": [],
            "peak_rss": [],
            "peak_fds": [],
            "upstream_peak_fds": [],
        }

        async def warm(t: Target = target) -> None:
            async with _session(8, timeout_s=60) as session:
                for res in await asyncio.gather(
                    *(send(session, t.url, t.body(i), False) for i in range(16))
                ):
                    if res.error:
                        run.errors.add(t.name, "in-flight warm-up", res.error)

        uvloop.run(warm())
        time.sleep(args.settle_s)
        record["rss"].append(group_usage(server.pgid))
        for b in range(bursts):
            print(
                f"in flight: {args.inflight} at once to {name}, burst {b + 1}/{bursts} ...",
                flush=True,
            )
            groups = {"server": server.pgid, "upstream": upstream.pgid}
            cpu0 = {k: group_usage(g).cpu_s for k, g in groups.items()}
            with PeakSampler(groups) as sampler:
                result = uvloop.run(
                    inflight_burst(
                        target,
                        args.inflight,
                        args.inflight_cap_s,
                        run.errors,
                        f"{args.inflight} in flight, burst {b + 1}",
                    )
                )
            result["cpu_s"] = {k: group_usage(g).cpu_s - cpu0[k] for k, g in groups.items()}
            time.sleep(args.settle_s)
            record["bursts"].append(result)
            record["rss"].append(group_usage(server.pgid))
            record["peak_rss"].append(sampler.peak_rss_kib["server"] / 1024)
            record["peak_fds"].append(sampler.peak_fds["server"])
            record["upstream_peak_fds"].append(sampler.peak_fds["upstream"])
            print(
                f"  {result['ok']}/{result['n']} ok in {result['elapsed']:.2f} s, "
                f"errors {result['errors'] or 0}",
                flush=True,
            )
            if result["capped"]:
                cap = f"{args.inflight_cap_s:.0f} s"
                run.notes.append(
                    f"{name}: in-flight burst {b + 1} hit the {cap} cap; later skipped"
                )
                break
        run.inflight[name] = record
        if server is not upstream:
            fl.stop(server)
    fl.stop(upstream)


# --------------------------------------------------------------------------- report


def _ms(x: float) -> str:
    return "—" if math.isnan(x) else f"{x:.2f} ms" if abs(x) < 100 else f"{x:.0f} ms"


def _ratio(num: float, den: float) -> float:
    if math.isnan(num) or math.isnan(den):
        return math.nan
    return math.inf if den <= 0 < num else num / den if den > 0 else math.nan


def _ratio_text(r: float) -> str:
    return "—" if math.isnan(r) else "∞" if math.isinf(r) else f"{r:.1f}x"


def _verdict(ok: bool | None) -> str:
    return "n/a" if ok is None else "PASS" if ok else "**FAIL**"


def added(data: dict[str, Any], key: str, name: str, q: float) -> float:
    if name not in data.get(key, {}) or not data[key][name]:
        return math.nan
    return pct(data[key][name], q) - pct(data[key]["direct"], q)


def _growth(record: dict[str, Any], after: int, before: int) -> float:
    """RSS growth from after burst ``before`` to after burst ``after`` (1-based), or nan."""
    rss: list[GroupUsage] = record["rss"]  # [before any burst, after burst 1, ...]
    if len(rss) <= after:
        return math.nan
    return (rss[after].rss_kib - rss[before].rss_kib) / rss[before].rss_kib


def verdicts(run: Run) -> list[tuple[str, str, str, bool | None]]:
    """(check, value, target, ok) for each target of the issue."""
    lit = run.litellm_problem is None and "litellm" in run.loops
    out: list[tuple[str, str, str, bool | None]] = []
    for q in (50, 99):
        pr, li = added(run.seq, "lat", "polyroute", q), added(run.seq, "lat", "litellm", q)
        r = _ratio(li, pr)
        out.append(
            (
                f"added latency p{q}: LiteLLM ÷ polyroute",
                _ratio_text(r) if lit else "n/a",
                f"≥ {TARGET_RATIO:.0f}x",
                (r >= TARGET_RATIO) if lit else None,
            )
        )
    if lit:
        r = _ratio(run.loops["polyroute"]["rps"], run.loops["litellm"]["rps"])
        out.append(
            (
                "throughput at 32 concurrent: polyroute ÷ LiteLLM",
                _ratio_text(r),
                f"≥ {TARGET_RATIO:.0f}x",
                r >= TARGET_RATIO,
            )
        )
    else:
        out.append(("throughput at 32 concurrent: polyroute ÷ LiteLLM", "n/a", "≥ 10x", None))
    n_err = run.errors.total("polyroute")
    out.append(("polyroute errors, every phase", str(n_err), "0", n_err == 0))
    rec = run.inflight.get("polyroute")
    if rec is not None:
        ok = all(b["ok"] == b["n"] for b in rec["bursts"])
        oks = " / ".join(f"{b['ok']:,}" for b in rec["bursts"])
        out.append(
            (
                f"polyroute, {run.args.inflight:,} in flight: answered per burst",
                oks,
                f"all {run.args.inflight:,}",
                ok,
            )
        )
        checks = [(2, 1, "burst 2 vs after burst 1 (the pool is warm from burst 1)")]
        if len(rec["rss"]) > 3:
            last = len(rec["rss"]) - 1
            checks.append(
                (last, last - 1, f"burst {last} vs after burst {last - 1} (a leak shows)")
            )
        for after, before, what in checks:
            growth = _growth(rec, after, before)
            out.append(
                (
                    f"polyroute RSS after {what}",
                    "—" if math.isnan(growth) else f"{100 * growth:+.1f} %",
                    f"≤ +{100 * FLAT_TOLERANCE:.0f} %",
                    None if math.isnan(growth) else growth <= FLAT_TOLERANCE,
                )
            )
    return out


def main_table(run: Run) -> str:
    names = run.names
    head = "| measure | " + " | ".join(
        {"direct": "direct", "polyroute": "polyroute", "litellm": "LiteLLM"}[n] for n in names
    )
    lines = [head + " |", "|" + " --- |" * (len(names) + 1)]

    def row(label: str, cell: Callable[[str], str]) -> None:
        lines.append(f"| {label} | " + " | ".join(cell(n) for n in names) + " |")

    seq, st = run.seq, run.stream

    def percentile(data: dict[str, Any], key: str, q: float) -> Callable[[str], str]:
        return lambda n: _ms(pct(data[key][n], q))

    def over_direct(data: dict[str, Any], key: str, q: float) -> Callable[[str], str]:
        return lambda n: "—" if n == "direct" else _ms(added(data, key, n, q))

    def loop(fmt: Callable[[dict[str, Any]], str]) -> Callable[[str], str]:
        return lambda n: fmt(run.loops[n])

    for q in (50, 99):
        row(f"sequential latency p{q}", percentile(seq, "lat", q))
    for q in (50, 99):
        row(f"**added latency p{q}** (over direct)", over_direct(seq, "lat", q))
    for q in (50, 99):
        row(f"streaming TTFB p{q}", percentile(st, "ttfb", q))
    for q in (50, 99):
        row(f"added TTFB p{q} (over direct)", over_direct(st, "ttfb", q))
    row(
        f"**{CONCURRENCY} concurrent: throughput** ({run.args.burst:,} requests)",
        loop(lambda x: f"{x['rps']:,.0f} req/s"),
    )
    row(
        f"{CONCURRENCY} concurrent: p50 / p99",
        loop(lambda x: f"{x['p50']:.1f} / {x['p99']:.1f} ms"),
    )
    row(
        f"{CONCURRENCY} concurrent: server CPU per request",
        loop(lambda x: f"{x['cpu_ms_per_req']:.2f} ms"),
    )
    row("**errors** (every phase)", lambda n: str(run.errors.total(n)))
    row("RSS idle after start-up (process group)", lambda n: f"{run.rss_idle[n].rss_mib:.0f} MiB")
    row("RSS after the load above", lambda n: f"{run.rss_loaded[n].rss_mib:.0f} MiB")
    inf = run.inflight
    if inf:
        k = f"{run.args.inflight:,}"

        def burst_cell(n: str, b: int) -> str:
            if n not in inf or len(inf[n]["bursts"]) <= b:
                return "—"
            x = inf[n]["bursts"][b]
            return (
                f"{x['ok']:,} ok, {sum(x['errors'].values()):,} errors, all done in "
                f"{x['elapsed']:.1f} s, p99 {x['p99'] / 1000:.2f} s"
            )

        most = max(len(r["bursts"]) for r in inf.values())

        def burst(b: int) -> Callable[[str], str]:
            return lambda n: burst_cell(n, b)

        for b in range(most):
            row(f"{k} in flight (upstream {run.args.inflight_delay_s} s), burst {b + 1}", burst(b))

        def rss_cell(n: str) -> str:
            if n not in inf:
                return "—"
            return " → ".join(f"{u.rss_mib:.0f}" for u in inf[n]["rss"]) + " MiB"

        row(f"{k} in flight: RSS before → after each burst", rss_cell)
        row(
            f"{k} in flight: peak RSS during bursts",
            lambda n: (
                "—" if n not in inf else " / ".join(f"{x:.0f}" for x in inf[n]["peak_rss"]) + " MiB"
            ),
        )
        row(
            f"{k} in flight: peak open fds per burst (server; upstream)",
            lambda n: (
                "—"
                if n not in inf or not inf[n]["peak_fds"]
                else " / ".join(f"{x:,}" for x in inf[n]["peak_fds"])
                + f"; {max(inf[n]['upstream_peak_fds']):,}"
            ),
        )
    return "\n".join(lines)


def verdict_table(run: Run) -> str:
    lines = ["| target | result | required | verdict |", "| --- | --- | --- | --- |"]
    lines += [f"| {a} | {b} | {c} | {_verdict(d)} |" for a, b, c, d in verdicts(run)]
    return "\n".join(lines)


def details(run: Run) -> list[str]:
    out = []
    s = run.seq
    out.append(
        f"Sequential: {s['rounds']:,} rounds (one request to each target per round, "
        f"order rotated each round; after each request, a wait until no server had used CPU "
        f"for {run.args.quiet_ms:g} ms); "
        f"streaming: {run.stream['rounds']:,} rounds; "
        f"{CONCURRENCY} concurrent: {run.args.burst:,} requests per target after "
        f"{CONCURRENCY * 4} warm-up requests."
    )
    dec = ", ".join(f"{k or '(none)'} {v:,}" for k, v in sorted(s["decisions"].items()))
    out.append(f"polyroute decisions seen in the sequential phase: {dec}.")
    for n in run.names:
        lp = run.loops[n]
        out.append(
            f"{n} at {CONCURRENCY} concurrent: {lp['n']:,} ok in {lp['elapsed']:.1f} s; "
            f"client CPU {lp['client_cpu_ms_per_req']:.2f} ms per request."
        )
    for n, rec in run.inflight.items():
        for b, x in enumerate(rec["bursts"], 1):
            errs = ", ".join(f"{k}: {v:,}" for k, v in x["errors"].items()) or "none"
            out.append(
                f"{n}, in-flight burst {b}: {x['ok']:,}/{x['n']:,} ok, errors {errs}; "
                f"answers p50 {x['p50'] / 1000:.2f} s, p99 {x['p99'] / 1000:.2f} s, "
                f"max {x['max'] / 1000:.2f} s; wall {x['elapsed']:.2f} s; CPU during the burst: "
                f"server {x['cpu_s']['server']:.2f} s, upstream {x['cpu_s']['upstream']:.2f} s, "
                f"client {x['client_cpu_s']:.2f} s."
            )
    for n in run.names:
        counts = run.errors.by_target.get(n)
        if counts:
            out.append(f"{n} errors: " + "; ".join(f"{k} x {v:,}" for k, v in counts.items()))
    return [f"- {line}" for line in out + run.notes]


def versions_facts(run: Run) -> list[str]:
    import importlib.metadata as md

    def v(pkg: str) -> str:
        try:
            return md.version(pkg)
        except md.PackageNotFoundError:
            return "not installed"

    git = "unknown"
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        rev = subprocess.run(
            ["git", "-C", str(HERE.parent), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(HERE.parent), "status", "--porcelain", "polyroute"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        ).stdout
        git = rev + (" (polyroute/ has uncommitted changes)" if dirty.strip() else "")
    facts = [
        f"polyroute {v('polyroute')} at git {git}; uvicorn {v('uvicorn')}, aiohttp {v('aiohttp')}, "
        f"uvloop {v('uvloop')}, starlette {v('starlette')} (polyroute, fake upstream, client)",
    ]
    if run.litellm_versions:
        lv = run.litellm_versions
        facts.append(
            f"LiteLLM {lv['litellm']} in {run.args.litellm_venv}: uvicorn {lv['uvicorn']}"
            f", fastapi {lv['fastapi']}, httpx {lv['httpx']}, aiohttp {lv['aiohttp']}"
        )
    else:
        facts.append(f"LiteLLM: unavailable ({run.litellm_problem})")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    facts.append(f"RLIMIT_NOFILE (soft/hard, inherited by the servers): {soft}/{hard}")
    return facts


def render(run: Run) -> str:
    parts = []
    if run.litellm_problem is not None:
        parts.append(f"**LiteLLM unavailable: {run.litellm_problem}** — polyroute vs direct only.")
        parts.append("")
    parts += [main_table(run), "", verdict_table(run), ""]
    return "\n".join(parts)


def write_results(run: Run, table: str) -> None:
    command = "python benchmarks/bench_compare.py" + "".join(f" {a}" for a in sys.argv[1:])
    text = "\n".join(
        [
            "# Side by side: direct, polyroute, LiteLLM (one run, one machine)",
            "",
            f"Produced by (benchmark lock {run.lock}, so no other benchmark ran meanwhile):",
            "",
            "```",
            command,
            "```",
            "",
            f"Date (UTC): {time.strftime('%Y-%m-%d %H:%M', time.gmtime())}; the run took "
            f"{run.elapsed_s / 60:.1f} min.",
            "",
            METHOD.format(
                quiet=f"{run.args.quiet_ms:g}",
                delay=run.args.inflight_delay_s,
                settle=run.args.settle_s,
            ),
            "",
            table,
            "",
            "Details:",
            "",
            *details(run),
            "",
            "Machine:",
            "",
            *(f"- {fact}" for fact in machine_facts() + versions_facts(run)),
            "",
        ]
    )
    RESULTS.write_text(text)


# --------------------------------------------------------------------------- main


# full run, --quick (None: the --quick run skips the in-flight test unless --inflight is given)
COUNTS = {
    "sequential": (2000, 100),
    "streaming": (500, 30),
    "burst": (3000, 300),
    "inflight": (5000, 0),
    "inflight_bursts": (3, 2),
    "litellm_inflight_bursts": (1, 1),
}


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--sequential", type=int, help="interleaved sequential rounds (2000)")
    p.add_argument("--streaming", type=int, help="interleaved streaming rounds (500)")
    p.add_argument("--burst", type=int, help="requests per 32-concurrent burst (3000)")
    p.add_argument("--inflight", type=int, help="requests at once, slow upstream (5000; 0 skips)")
    p.add_argument("--inflight-bursts", type=int, help="in-flight bursts via polyroute (3)")
    p.add_argument("--litellm-inflight-bursts", type=int, help="in-flight bursts via LiteLLM (1)")
    p.add_argument("--inflight-delay-s", type=float, default=1.5, help="slow upstream's delay")
    p.add_argument("--inflight-cap-s", type=float, default=180.0, help="time cap of one burst")
    p.add_argument("--quiet-ms", type=float, default=0.5, help="quiet wait after sequential reqs")
    p.add_argument("--settle-s", type=float, default=SETTLE_S, help="idle time before RSS reads")
    p.add_argument("--no-litellm", action="store_true", help="polyroute vs direct only")
    p.add_argument("--litellm-venv", type=Path, default=DEFAULT_VENV, help="LiteLLM's venv")
    p.add_argument("--litellm-spec", default="litellm[proxy]", help="pip spec to install")
    p.add_argument("--logs", type=Path, default=None, help="keep server logs here")
    p.add_argument("--quick", action="store_true", help="smoke run: small counts, no in-flight")
    p.add_argument("--no-lock", action="store_true", help=f"do not take {LOCK}")
    p.add_argument("--no-write", action="store_true", help=f"do not write {RESULTS.name}")
    args = p.parse_args()
    for key, (full, quick) in COUNTS.items():
        if getattr(args, key) is None:
            setattr(args, key, quick if args.quick else full)
    return args


def main() -> None:
    args = parse_args()
    signal.signal(signal.SIGTERM, _on_sigterm)
    soft, _ = raise_nofile()
    if args.inflight and soft < 3 * args.inflight + 1000:
        print(f"warning: RLIMIT_NOFILE {soft} may be too low for {args.inflight} in flight")
    run = Run(args)
    with contextlib.ExitStack() as stack:
        if not args.no_lock:
            run.lock = stack.enter_context(bench_lock(LOCK, LOCK_WAIT_S))
        measure(run)
    table = render(run)
    print()
    print(table)
    print("\n".join(details(run)))
    print(f"\nthe run took {run.elapsed_s:.0f} s")
    if not args.no_write:
        write_results(run, table)
        print(f"written to {RESULTS.relative_to(HERE.parent)}")


def measure(run: Run) -> None:
    args = run.args
    t0 = time.monotonic()
    if args.no_litellm:
        run.litellm_problem = "skipped (--no-litellm)"
    else:
        try:
            run.litellm_versions = ensure_litellm(args.litellm_venv, args.litellm_spec)
        except LiteLLMUnavailable as exc:
            litellm_failed(run, f"LiteLLM could not be installed: {exc}")
    with contextlib.ExitStack() as stack:
        if args.logs is None:
            logs = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-cmp-")))
        else:
            logs = args.logs
            logs.mkdir(parents=True, exist_ok=True)
        fl = stack.enter_context(fleet(logs, args.litellm_venv))
        phase_fast(run, fl)
        if args.inflight:
            phase_inflight(run, fl)
    run.elapsed_s = time.monotonic() - t0


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt as exc:
        sys.exit(f"interrupted ({exc or 'Ctrl-C'}); every server this run started was stopped")
