"""Streaming requests against a misbehaving upstream process (RELIABILITY.md, Streams).

* A failure before the first chunk fails over like a plain request (or, alone,
  is the documented error status, before any byte of the stream).
* A failure after the first chunk cannot fail over: the client gets the chunks
  so far, then a ``stream_interrupted`` error event and never ``data: [DONE]``;
  the official ``openai`` client raises; the trace says ``stream_cut``.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import httpx
import openai
import orjson
import pytest
from faults.harness import (
    ATTEMPTS,
    BACKUP,
    CODES,
    DEADLINE_S,
    FAULTS,
    IDLE_S,
    OUTCOMES,
    SLACK_S,
    TIMEOUT_OVERRIDES,
    TIMEOUT_S,
    Case,
    Chaos,
    HealthyLoad,
    call,
    chat_body,
    failover,
    outcomes,
    solo,
    spec_key,
)
from procs import Gateway

pytestmark = pytest.mark.faults


def _timeout(fault: str) -> float:
    return TIMEOUT_OVERRIDES.get(fault, TIMEOUT_S)


BEFORE_FIRST_CHUNK = [
    Case("status503", "status_503", 502),
    Case("retry_after_long", "status_429", 502, attempts=1),
    Case("hang", "timeout", 504, min_s=ATTEMPTS * TIMEOUT_S),
    Case("refused", "connect_error", 503),
    Case("reset", "protocol_error", 502),
    Case("cut_first", "protocol_error", 502),  # headers, then closed before any chunk
    # headers, then silence: the attempt timeout (0.5 s here, below the 1 s idle
    # timeout) bounds the wait for the first chunk
    Case("stall_first", "timeout", 504, min_s=ATTEMPTS * _timeout("stall_first")),
    Case("trickle", "timeout", 504, min_s=ATTEMPTS * TIMEOUT_S),  # first chunk too slow
    # headers after 0.6 s, first chunk 0.6 s later: 1.2 s > timeout_s 1 s
    Case("slowfirst", "timeout", 504, min_s=ATTEMPTS * TIMEOUT_S),
    Case("malformed", "protocol_error", 502),  # the first data line is not JSON
    Case("error200", "protocol_error", 502),  # an error event before any chunk
    Case("html", "protocol_error", 502),  # text/html to a stream request
    Case("plainjson", "protocol_error", 502),  # application/json to a stream request
    Case("huge", "protocol_error", 502),  # a 33 MiB data line (no newline)
    Case("huge_chunked", "protocol_error", 502),
]


@pytest.mark.parametrize("case", BEFORE_FIRST_CHUNK, ids=[c.fault for c in BEFORE_FIRST_CHUNK])
def test_stream_fault_before_first_chunk(
    case: Case, client: httpx.Client, gateway: Gateway, chaos: Chaos
) -> None:
    with ThreadPoolExecutor(2) as pool:
        fo_future = pool.submit(call, client, failover(case.fault, stream=True), True)
        solo_future = pool.submit(call, client, solo(case.fault, stream=True), True)
        fo, alone = fo_future.result(), solo_future.result()

    # fails over to the backup, which streams a complete answer
    assert fo.status == 200, fo.body[:500]
    assert fo.headers["content-type"].startswith("text/event-stream")
    assert fo.headers["x-polyroute-model"] == BACKUP
    assert fo.done, fo.events[-3:]
    chunks = [orjson.loads(e) for e in fo.events[:-1]]
    assert chunks and all(c["model"] == BACKUP for c in chunks)
    assert case.min_s * 0.95 <= fo.elapsed_s <= DEADLINE_S + SLACK_S, fo.elapsed_s
    trace = gateway.wait_trace(fo.trace_id)
    faulty = f"{case.fault}.stream.fo"
    assert outcomes(trace) == [(faulty, case.attempt)] * case.attempts + [(BACKUP, "ok")]
    assert trace["outcome"] == "ok_after_failover"
    assert trace["status"] == 200

    # alone: an error response, not a stream
    assert alone.status == case.status, alone.body[:500]
    assert alone.headers["content-type"].startswith("application/json")
    assert case.min_s * 0.95 <= alone.elapsed_s <= DEADLINE_S + SLACK_S, alone.elapsed_s
    err = orjson.loads(alone.body)["error"]
    assert err["code"] == CODES[case.status]
    assert alone.trace_id in err["message"]
    trace = gateway.wait_trace(alone.trace_id)
    assert outcomes(trace) == [(solo(case.fault, stream=True), case.attempt)] * case.attempts
    assert trace["outcome"] == OUTCOMES[case.status]
    assert trace["status"] == case.status

    if not FAULTS[case.fault].startswith("@"):
        assert chaos.requests(spec_key(case.fault, True, "fo")) == case.attempts
        assert chaos.requests(spec_key(case.fault, True, "solo")) == case.attempts


@dataclass(frozen=True)
class MidCase:
    fault: str
    chunks: int  # chunks the upstream sent before failing
    min_s: float = 0.0


AFTER_FIRST_CHUNK = [
    MidCase("cut", 2),  # closed (FIN) without [DONE] nor the chunked terminator
    MidCase("cut_rst", 2),  # reset
    MidCase("stall", 1, min_s=IDLE_S),  # silence: the idle timeout ends it
    MidCase("malformed_mid", 2),  # a broken data line
    MidCase("errevent", 2),  # the upstream's own error event
]


@pytest.mark.parametrize("case", AFTER_FIRST_CHUNK, ids=[c.fault for c in AFTER_FIRST_CHUNK])
def test_stream_fault_after_first_chunk_never_looks_complete(
    case: MidCase, client: httpx.Client, gateway: Gateway, chaos: Chaos
) -> None:
    # even with a healthy candidate in the decision: no failover once bytes were sent
    r = call(client, failover(case.fault, stream=True), stream=True)
    faulty = f"{case.fault}.stream.fo"
    assert r.status == 200 and r.headers["x-polyroute-model"] == faulty
    assert not r.done and b"[DONE]" not in r.body
    data = [orjson.loads(e) for e in r.events]
    assert [c["choices"][0]["delta"]["content"] for c in data[:-1]] == [
        f"tok{i} " for i in range(case.chunks)
    ]
    assert all(c["model"] == faulty for c in data[:-1])
    err = r.error()
    assert err["code"] == "stream_interrupted"
    assert r.trace_id in err["message"]
    assert case.min_s * 0.95 <= r.elapsed_s <= DEADLINE_S + IDLE_S + SLACK_S, r.elapsed_s

    trace = gateway.wait_trace(r.trace_id)
    assert outcomes(trace) == [(faulty, "ok"), (faulty, "stream_cut")]
    assert trace["outcome"] == "stream_cut"
    assert trace["status"] == 502  # logged as failed, although the client saw 200 first
    assert chaos.requests(spec_key(case.fault, True, "fo")) == 1
    assert BACKUP not in {a["model"] for a in trace["attempts"]}


def test_openai_client_raises_on_a_cut_stream(gateway: Gateway, load: HealthyLoad) -> None:
    received: list[str] = []
    with gateway.client(timeout_s=DEADLINE_S + IDLE_S + SLACK_S) as oai:
        stream = oai.chat.completions.create(
            model=solo("cut", stream=True),
            messages=[{"role": "user", "content": "hi"}],
            stream=True,
        )
        with pytest.raises(openai.APIError) as info, stream:
            for chunk in stream:
                received.extend(c.delta.content or "" for c in chunk.choices)
    assert received == ["tok0 ", "tok1 "]  # what the upstream sent before it broke
    assert "trace " in info.value.message and "after it started" in info.value.message


def test_stream_dripping_forever_outlives_the_deadline_until_the_client_leaves(
    gateway: Gateway, chaos: Chaos, load: HealthyLoad
) -> None:
    """Current behaviour, not a promise of RELIABILITY.md: ``deadline_s`` bounds a
    stream only until its first chunk and the idle timeout only the gaps, so an
    upstream that keeps sending valid chunks (one every 0.2 s) is relayed for as long
    as the client listens.  When the client goes away, the gateway must let go of the
    upstream connection and log ``client_disconnected``."""
    key = spec_key("drip", True, "solo")
    watch_s = DEADLINE_S + 0.5
    chunks = 0
    with (
        httpx.Client(base_url=gateway.base_url, timeout=5.0, trust_env=False) as c,
        c.stream("POST", "/chat/completions", json=chat_body(solo("drip", True), True)) as resp,
    ):
        assert resp.status_code == 200
        trace_id = resp.headers["x-polyroute-trace-id"]
        started = time.monotonic()
        for line in resp.iter_lines():
            if line.startswith("data:"):
                assert line != "data: [DONE]"
                chunks += 1
            if time.monotonic() - started > watch_s:
                break
        assert chaos.open(key) == 1  # the upstream is still streaming to the gateway
    assert chunks >= watch_s / 0.2 * 0.6, chunks  # chunks kept coming past the deadline

    deadline = time.monotonic() + 5.0
    while chaos.open(key) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert chaos.open(key) == 0, "the gateway kept the upstream stream after the client left"
    trace = gateway.wait_trace(trace_id)
    assert trace["outcome"] == "client_disconnected"
    assert trace["status"] == 499
    assert chaos.requests(key) == 1


def test_healthy_load_was_served_throughout(load: HealthyLoad) -> None:
    """Keep this test last in the module (see test_plain_faults)."""
    load.check(min_requests=20)
