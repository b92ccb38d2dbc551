"""The fault tier's harness: the chaos upstream and gateway processes, their config,
a client that times every request, and the background healthy load.

One chaos process (``chaos_upstream.py``) serves every backend; the fault is in
each backend's base URL.  Every fault gets its own backends, so no test sees
another's circuit breaker or request counters:

* ``solo(F)`` is a model name whose only backend has fault ``F`` (the
  documented error status is expected);
* ``failover(F)`` is a profile whose decision is ``[<F backend>, backup]`` with a
  healthy backup (200 and ``ok_after_failover`` are expected);
* ``stream=True`` gives each of them separate backends for streaming requests.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import yaml
from procs import (
    GATEWAY_READY_TIMEOUT_S,
    LOOPBACK,
    Gateway,
    Proc,
    free_port,
    gateway_argv,
    start_process,
)

CHAOS_SCRIPT = Path(__file__).with_name("chaos_upstream.py")
CHAOS_READY_TIMEOUT_S = 15.0

# The gateway's reliability settings, short so that the tier runs in seconds.
TIMEOUT_S = 1.0  # models.*.timeout_s
DEADLINE_S = 3.0  # server.deadline_s
IDLE_S = 1.0  # server.stream_idle_timeout_s
RETRIES = 1
RETRY_AFTER_MAX_S = 1.0
BREAKER_FAILURES = 3
BREAKER_RESET_S = 1.0
SERVER: dict[str, Any] = {
    "deadline_s": DEADLINE_S,
    "stream_idle_timeout_s": IDLE_S,
    "retries": RETRIES,
    "backoff_base_s": 0.01,
    "backoff_max_s": 0.05,
    "retry_after_max_s": RETRY_AFTER_MAX_S,
    "breaker_failures": BREAKER_FAILURES,
    "breaker_reset_s": BREAKER_RESET_S,
}
SLACK_S = 1.0  # allowed beyond a deadline (scheduling on a loaded 2-core machine)

ATTEMPTS = RETRIES + 1  # attempts per backend: the first and its retries
CODES = {502: "upstream_failed", 503: "upstream_unavailable", 504: "upstream_timeout"}
OUTCOMES = {502: "failed", 503: "unavailable", 504: "timeout"}


@dataclass(frozen=True)
class Case:
    fault: str
    attempt: str  # the outcome of each attempt on the faulty backend ("a|b": either)
    status: int  # what the client gets when the faulty backend is the only one (0: by rule)
    attempts: int = ATTEMPTS  # attempts on the faulty backend (retries honoured)
    min_s: float = 0.0  # the least a request must take (retry waits, timeouts)


CLIENT_TIMEOUT_S = DEADLINE_S + IDLE_S + 4.0  # the backstop: no request may hang past it

# fault name -> chaos spec.  "@refused", "@noread" and "@reset_accept" are
# connection-level faults: a port of their own rather than a path.
FAULTS: dict[str, str] = {
    "status500": "status/code=500",
    "status502": "status/code=502",
    "status503": "status/code=503",
    "status503_once": "status/code=503/first=1",
    "retry_after": f"status/code=429/retry_after={RETRY_AFTER_MAX_S / 2}",
    "retry_after_once": f"status/code=429/retry_after={RETRY_AFTER_MAX_S / 2}/first=1",
    "retry_after_long": "status/code=429/retry_after=120",
    "hang": "hang",
    "noread": "@noread",
    "refused": "@refused",
    "reset": "reset",
    "reset_accept": "@reset_accept",
    "cut": "cut",  # plain: half the announced body; stream: 2 chunks, then FIN
    "cut_rst": "cut/how=rst",  # stream: 2 chunks, then RST
    "cut_first": "cut/chunks=0",  # stream: headers, then FIN before any chunk
    "stall": "stall/chunks=1",  # stream: 1 chunk then silence
    "stall_first": "stall/chunks=0",  # stream: headers then silence
    "trickle": "trickle/gap=0.05",
    "drip": "drip/gap=0.2",
    "slowfirst": "slowfirst/head=0.6/first=0.6",
    "malformed": "malformed",
    "malformed_mid": "malformed/chunks=2",  # stream: 2 good chunks, then a broken one
    "errevent": "errevent/chunks=2",
    "error200": "error200",  # plain: 200 {"error": ...}; stream: an error event first
    "html": "html",
    "plainjson": "plainjson",
    "huge": "huge/mib=33/length=1",  # Content-Length over the cap
    "huge_chunked": "huge/mib=33",  # no length: the cap must hit while reading
    "circuit": "switch/name=circuit",
    "client_status500": "status/code=500",  # for the openai-client test
    "client_refused": "@refused",
}
# Backends whose attempt timeout differs from TIMEOUT_S.
TIMEOUT_OVERRIDES: dict[str, float] = {"stall_first": 0.5}  # below the idle timeout
HEALTHY = "healthy"  # the profile of the background load


def solo(fault: str, stream: bool = False) -> str:
    """The model (direct, single backend) that always has ``fault``."""
    return f"{fault}.{'stream' if stream else 'plain'}"


def failover(fault: str, stream: bool = False) -> str:
    """The profile whose decision is [<fault backend>, <healthy backend>]."""
    return f"failover.{fault}.{'stream' if stream else 'plain'}"


def deadline_profile(stream: bool = False) -> str:
    """The profile whose decision is [hang, hang, hang, healthy]: the deadline runs out first."""
    return f"deadline.{'stream' if stream else 'plain'}"


BACKUP = "backup"


def gateway_config(chaos: Proc, ports: dict[str, int]) -> dict[str, Any]:
    def base(spec: str, tag: str) -> str:
        if spec.startswith("@"):  # a port of the chaos process (see its GET /ports)
            return f"http://{LOOPBACK}:{ports[spec[1:]]}/v1"
        return f"{chaos.url}/fault/{spec}/t={tag}/v1"

    def model(spec: str, tag: str, timeout_s: float = TIMEOUT_S) -> dict[str, Any]:
        return {"provider": "openai", "base_url": base(spec, tag), "timeout_s": timeout_s}

    models: dict[str, Any] = {
        BACKUP: model("ok", "backup"),
        "load": model("ok", "load"),
    }
    profiles: dict[str, Any] = {HEALTHY: {"decisions": [{"name": "healthy", "models": ["load"]}]}}
    for kind in ("plain", "stream"):
        chain = [f"deadline{i}.{kind}" for i in range(3)] + [f"never_reached.{kind}"]
        for name in chain[:-1]:
            models[name] = model("hang", name)
        models[chain[-1]] = model("ok", chain[-1])
        profiles[f"deadline.{kind}"] = {"decisions": [{"name": "deadline", "models": chain}]}
    for fault, spec in FAULTS.items():
        timeout_s = TIMEOUT_OVERRIDES.get(fault, TIMEOUT_S)
        for stream in (False, True):
            kind = "stream" if stream else "plain"
            models[solo(fault, stream)] = model(spec, f"solo-{kind}", timeout_s)
            fo_backend = f"{fault}.{kind}.fo"
            models[fo_backend] = model(spec, f"fo-{kind}", timeout_s)
            profiles[failover(fault, stream)] = {
                "decisions": [{"name": f"failover-{fault}", "models": [fo_backend, BACKUP]}]
            }
    return {
        "models": models,
        "decisions": [{"name": "default", "models": [BACKUP]}],
        "profiles": profiles,
        "server": SERVER,
    }


def spec_key(fault: str, stream: bool, use: str) -> str:
    """The chaos counter key of a fault's backend (``use`` is ``solo`` or ``fo``)."""
    return f"{FAULTS[fault]}/t={use}-{'stream' if stream else 'plain'}"


# --------------------------------------------------------------------------- processes


@dataclass
class Chaos:
    proc: Proc
    ports: dict[str, int]

    def stats(self) -> dict[str, dict[str, int]]:
        with httpx.Client(trust_env=False, timeout=5.0) as c:
            data: dict[str, dict[str, int]] = c.get(self.proc.url + "/stats").json()
        return data

    def requests(self, key: str) -> int:
        return self.stats()["requests"].get(key, 0)

    def open(self, key: str) -> int:
        return self.stats()["open"].get(key, 0)

    def switch(self, name: str, spec: str) -> None:
        with httpx.Client(trust_env=False, timeout=5.0) as c:
            c.post(f"{self.proc.url}/switch/{name}", content=spec).raise_for_status()


def start_chaos(log_dir: Path) -> Chaos:
    port = free_port()
    argv = [sys.executable, str(CHAOS_SCRIPT), "--port", str(port)]
    proc = start_process("chaos", argv, port, "/stats", log_dir, CHAOS_READY_TIMEOUT_S)
    with httpx.Client(trust_env=False, timeout=5.0) as c:
        ports = c.get(proc.url + "/ports").json()
    return Chaos(proc, ports)


def start_gateway(chaos: Chaos, log_dir: Path) -> Gateway:
    config_path = log_dir / "faults-gateway.yaml"
    config = gateway_config(chaos.proc, chaos.ports)
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    port = free_port()
    proc = start_process(
        "faults-gateway",
        gateway_argv(config_path, port),
        port,
        "/readyz",
        log_dir,
        GATEWAY_READY_TIMEOUT_S,
    )
    return Gateway(proc, config_path)


# --------------------------------------------------------------------------- client


@dataclass
class Result:
    """One request through the gateway, as the client saw it."""

    status: int
    headers: httpx.Headers
    body: bytes
    elapsed_s: float
    events: list[bytes] = field(default_factory=list)  # ``data:`` payloads of a stream

    @property
    def trace_id(self) -> str:
        return self.headers["x-polyroute-trace-id"]

    def json(self) -> Any:
        return orjson.loads(self.body)

    @property
    def done(self) -> bool:
        """The stream ended with ``data: [DONE]``."""
        return bool(self.events) and self.events[-1] == b"[DONE]"

    def error(self) -> dict[str, Any]:
        """The OpenAI-style error object (plain error response or a stream's error event)."""
        obj = orjson.loads(self.events[-1]) if self.events else self.json()
        err = obj["error"]
        assert isinstance(err, dict), obj
        assert {"message", "type", "code"} <= err.keys(), err
        return err


def chat_body(model: str, stream: bool = False) -> dict[str, Any]:
    return {
        "model": model,
        "messages": [{"role": "user", "content": "Say hello."}],
        "max_tokens": 8,
        "stream": stream,
    }


def http_client(gateway: Gateway, timeout_s: float = CLIENT_TIMEOUT_S) -> httpx.Client:
    return httpx.Client(base_url=gateway.base_url, timeout=timeout_s, trust_env=False)


def call(client: httpx.Client, model: str, stream: bool = False) -> Result:
    """POST /v1/chat/completions; fails the test if the client's backstop timeout fires."""
    body = chat_body(model, stream)
    started = time.perf_counter()
    try:
        if not stream:
            resp = client.post("/chat/completions", json=body)
            return Result(resp.status_code, resp.headers, resp.content, _since(started))
        with client.stream("POST", "/chat/completions", json=body) as resp:
            events: list[bytes] = []
            raw: list[bytes] = []
            for line in resp.iter_lines():
                raw.append(line.encode())
                if line.startswith("data:"):
                    events.append(line[5:].strip().encode())
            return Result(resp.status_code, resp.headers, b"\n".join(raw), _since(started), events)
    except httpx.TimeoutException as exc:
        pytest.fail(
            f"{model}: no answer within the client's {client.timeout.read}s backstop "
            f"(the gateway let a request hang past its deadline): {exc!r}"
        )


def _since(started: float) -> float:
    return time.perf_counter() - started


def outcomes(trace: dict[str, Any]) -> list[tuple[str, str]]:
    """(model, outcome) of every attempt in a logged trace."""
    return [(a["model"], a["outcome"]) for a in trace["attempts"]]


# --------------------------------------------------------------------------- healthy load


LOAD_INTERVAL_S = 0.1  # one request every 100 ms, alternating plain and streaming
LOAD_MAX_LATENCY_S = 1.0


@dataclass
class Sample:
    stream: bool
    status: int | None
    latency_s: float
    complete: bool
    error: str = ""


class HealthyLoad:
    """Requests to the healthy-only profile from a background thread, at a bounded rate,
    for as long as the faults are being injected."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self.samples: list[Sample] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="healthy-load", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=CLIENT_TIMEOUT_S + 5)
        assert not self._thread.is_alive(), "the healthy load did not stop"

    def _run(self) -> None:
        stream = False
        with http_client(self.gateway, timeout_s=CLIENT_TIMEOUT_S) as client:
            while not self._stop.wait(LOAD_INTERVAL_S):
                stream = not stream
                started = time.perf_counter()
                try:
                    r = self._one(client, stream)
                except Exception as exc:  # recorded, never silently lost
                    self.samples.append(Sample(stream, None, _since(started), False, repr(exc)))
                    continue
                self.samples.append(r)

    @staticmethod
    def _one(client: httpx.Client, stream: bool) -> Sample:
        started = time.perf_counter()
        body = chat_body(HEALTHY, stream)
        if not stream:
            resp = client.post("/chat/completions", json=body)
            ok = resp.status_code == 200 and bool(resp.json()["choices"])
            return Sample(False, resp.status_code, _since(started), ok)
        with client.stream("POST", "/chat/completions", json=body) as resp:
            lines = [line for line in resp.iter_lines() if line.startswith("data:")]
        complete = bool(lines) and lines[-1] == "data: [DONE]"
        return Sample(True, resp.status_code, _since(started), complete)

    def summary(self) -> str:
        lat = sorted(s.latency_s for s in self.samples)
        if not lat:
            return "no healthy requests"
        p50, p99 = lat[len(lat) // 2], lat[min(len(lat) - 1, int(len(lat) * 0.99))]
        return (
            f"{len(lat)} healthy requests: p50 {p50 * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms, "
            f"max {lat[-1] * 1000:.1f} ms"
        )

    def check(self, min_requests: int) -> None:
        """Every request so far succeeded, completely, within LOAD_MAX_LATENCY_S."""
        print(self.summary())  # shown with -rP
        samples = list(self.samples)
        assert len(samples) >= min_requests, (
            f"only {len(samples)} healthy requests were sent (expected >= {min_requests})"
        )
        bad = [s for s in samples if s.status != 200 or not s.complete]
        assert not bad, f"{len(bad)}/{len(samples)} healthy requests failed: {bad[:5]}"
        slow = [s for s in samples if s.latency_s > LOAD_MAX_LATENCY_S]
        assert not slow, (
            f"{len(slow)}/{len(samples)} healthy requests took over {LOAD_MAX_LATENCY_S}s: "
            f"{slow[:5]}"
        )


@contextmanager
def healthy_load(gateway: Gateway) -> Iterator[HealthyLoad]:
    load = HealthyLoad(gateway)
    load.start()
    try:
        yield load
    finally:
        load.stop()
