"""The circuit breaker and the request deadline, through real processes.

Circuit (RELIABILITY.md, Circuit breaker): after ``breaker_failures`` (3)
consecutive failures the backend is skipped (``circuit_open``) without reaching
the upstream; after ``breaker_reset_s`` one half-open probe goes through: a
failure reopens the circuit, a success closes it.  Deadline: however many
candidates are left, the client has its answer (504) at ``deadline_s``.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import orjson
import pytest
from faults.harness import (
    BACKUP,
    BREAKER_RESET_S,
    DEADLINE_S,
    SLACK_S,
    TIMEOUT_S,
    Chaos,
    HealthyLoad,
    Result,
    call,
    deadline_profile,
    failover,
    outcomes,
    solo,
    spec_key,
)
from procs import Gateway, http_get

pytestmark = pytest.mark.faults

FAST_S = 0.5  # a skipped backend costs no upstream time


def _readyz(gateway: Gateway) -> dict[str, Any]:
    status, body = http_get(gateway.proc.url + "/readyz")
    assert status == 200, body  # other backends are healthy
    data: dict[str, Any] = orjson.loads(body)
    return data["backends"]


def _traced(gateway: Gateway, r: Result) -> list[tuple[str, str]]:
    return outcomes(gateway.wait_trace(r.trace_id))


def test_circuit_opens_skips_the_backend_and_recovers_after_a_probe(
    client: httpx.Client, gateway: Gateway, chaos: Chaos
) -> None:
    alone, behind = solo("circuit"), failover("circuit")
    fo_backend = "circuit.plain.fo"
    alone_key, fo_key = spec_key("circuit", False, "solo"), spec_key("circuit", False, "fo")
    chaos.switch("circuit", "status/code=503")

    # 1st request: 2 failures (attempt + retry), the circuit stays closed
    r = call(client, alone)
    assert r.status == 502
    assert _traced(gateway, r) == [(alone, "status_503")] * 2
    r = call(client, behind)
    assert r.status == 200 and r.headers["x-polyroute-model"] == BACKUP
    assert _traced(gateway, r) == [(fo_backend, "status_503")] * 2 + [(BACKUP, "ok")]
    assert _readyz(gateway)[alone] == "closed"

    # 2nd request: the 3rd failure opens the circuit; no retry on an open circuit
    r = call(client, alone)
    assert r.status == 502
    assert _traced(gateway, r) == [(alone, "status_503")]
    r = call(client, behind)
    assert r.status == 200
    assert _traced(gateway, r) == [(fo_backend, "status_503"), (BACKUP, "ok")]
    states = _readyz(gateway)
    assert states[alone] == "open" and states[fo_backend] == "open"
    assert chaos.requests(alone_key) == 3 and chaos.requests(fo_key) == 3

    # open: skipped at once, the upstream sees nothing
    r = call(client, alone)
    assert r.status == 503 and r.error()["code"] == "upstream_unavailable"
    assert r.elapsed_s < FAST_S
    trace = gateway.wait_trace(r.trace_id)
    assert outcomes(trace) == [(alone, "circuit_open")]
    assert trace["outcome"] == "unavailable"
    r = call(client, behind)  # the selector puts the open backend last: the backup answers
    assert r.status == 200 and r.headers["x-polyroute-model"] == BACKUP
    trace = gateway.wait_trace(r.trace_id)
    assert trace["candidates"] == [BACKUP, fo_backend]
    assert outcomes(trace) == [(BACKUP, "ok")]
    assert chaos.requests(alone_key) == 3 and chaos.requests(fo_key) == 3

    # half-open probe that fails: one attempt, the circuit opens again
    time.sleep(BREAKER_RESET_S + 0.1)
    assert _readyz(gateway)[alone] == "half_open"
    r = call(client, alone)
    assert r.status == 502
    assert _traced(gateway, r) == [(alone, "status_503")]
    assert _readyz(gateway)[alone] == "open"
    assert chaos.requests(alone_key) == 4

    # the upstream recovers; the next probe succeeds and closes the circuit
    chaos.switch("circuit", "ok")
    time.sleep(BREAKER_RESET_S + 0.1)
    r = call(client, alone)
    assert r.status == 200 and r.headers["x-polyroute-model"] == alone
    assert _traced(gateway, r) == [(alone, "ok")]
    assert _readyz(gateway)[alone] == "closed"
    r = call(client, behind)
    assert r.status == 200 and r.headers["x-polyroute-model"] == fo_backend
    assert _traced(gateway, r) == [(fo_backend, "ok")]
    assert chaos.requests(alone_key) == 5 and chaos.requests(fo_key) == 4


def test_deadline_caps_the_whole_failover_chain(
    client: httpx.Client, gateway: Gateway, chaos: Chaos
) -> None:
    """[hang, hang, hang, healthy] with 1 s attempts, 1 retry and a 3 s deadline: the
    deadline runs out on the 3rd attempt; the healthy backend is never reached."""
    with ThreadPoolExecutor(2) as pool:
        futures = [pool.submit(call, client, deadline_profile(s), s) for s in (False, True)]
        results = [f.result() for f in futures]
    for stream, r in zip((False, True), results, strict=True):
        kind = "stream" if stream else "plain"
        assert r.status == 504, r.body[:300]
        assert r.error()["code"] == "upstream_timeout"
        assert DEADLINE_S - 0.1 <= r.elapsed_s <= DEADLINE_S + SLACK_S, r.elapsed_s
        trace = gateway.wait_trace(r.trace_id)
        assert outcomes(trace) == [
            (f"deadline0.{kind}", "timeout"),
            (f"deadline0.{kind}", "timeout"),
            (f"deadline1.{kind}", "timeout"),
        ]
        assert all(a["latency_ms"] <= (TIMEOUT_S + 0.2) * 1000 for a in trace["attempts"])
        assert trace["outcome"] == "timeout" and trace["status"] == 504
        assert chaos.requests(f"hang/t=deadline2.{kind}") == 0
        assert chaos.requests(f"ok/t=never_reached.{kind}") == 0


def test_healthy_load_was_served_throughout(load: HealthyLoad) -> None:
    """Keep this test last in the module (see test_plain_faults)."""
    load.check(min_requests=20)
