"""Non-streaming requests against a misbehaving upstream process (RELIABILITY.md).

For each fault two requests run at once: through ``failover(F)`` (decision
``[faulty, backup]``: 200 from the backup, ``ok_after_failover``) and to
``solo(F)`` (the faulty backend alone: the documented OpenAI-style error).  Both
answer within the deadline, the access log says what happened, and the chaos
upstream confirms how many attempts reached it.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import httpx
import openai
import pytest
from faults.harness import (
    ATTEMPTS,
    BACKUP,
    CODES,
    DEADLINE_S,
    FAULTS,
    OUTCOMES,
    RETRY_AFTER_MAX_S,
    SLACK_S,
    TIMEOUT_S,
    Case,
    Chaos,
    HealthyLoad,
    call,
    failover,
    outcomes,
    solo,
    spec_key,
)
from procs import Gateway

pytestmark = pytest.mark.faults


def documented_status(attempts: list[str]) -> int:
    """RELIABILITY.md: 504 if every attempt timed out, 503 if no backend could be
    reached, 502 otherwise."""
    if all(a == "timeout" for a in attempts):
        return 504
    if all(a in {"connect_error", "circuit_open"} for a in attempts):
        return 503
    return 502


CASES = [
    Case("status500", "status_500", 502),
    Case("status502", "status_502", 502),
    Case("status503", "status_503", 502),
    Case("retry_after", "status_429", 502, min_s=RETRY_AFTER_MAX_S / 2),
    Case("retry_after_long", "status_429", 502, attempts=1),  # > retry_after_max_s: move on
    Case("hang", "timeout", 504, min_s=ATTEMPTS * TIMEOUT_S),
    Case("noread", "timeout", 504, min_s=ATTEMPTS * TIMEOUT_S),
    Case("trickle", "timeout", 504, min_s=ATTEMPTS * TIMEOUT_S),
    Case("refused", "connect_error", 503),
    Case("reset", "protocol_error", 502),
    # reset right after accept: depending on the race with the client's connect(), a
    # failed connect (-> 503 alone) or a reset while sending the request (-> 502)
    Case("reset_accept", "connect_error|protocol_error", 0),
    Case("cut", "protocol_error", 502),
    Case("malformed", "protocol_error", 502),
    Case("error200", "protocol_error", 502),  # 200 with {"error": ...} and no choices
    Case("html", "protocol_error", 502),
    Case("huge", "protocol_error", 502),
    Case("huge_chunked", "protocol_error", 502),
]


@pytest.mark.parametrize("case", CASES, ids=[c.fault for c in CASES])
def test_plain_fault(case: Case, client: httpx.Client, gateway: Gateway, chaos: Chaos) -> None:
    with ThreadPoolExecutor(2) as pool:
        fo_future = pool.submit(call, client, failover(case.fault))
        solo_future = pool.submit(call, client, solo(case.fault))
        fo, alone = fo_future.result(), solo_future.result()

    # with a healthy candidate behind it: retried, then failed over
    assert fo.status == 200, fo.body[:500]
    assert fo.headers["x-polyroute-model"] == BACKUP
    assert fo.json()["model"] == BACKUP and fo.json()["choices"]
    assert case.min_s * 0.95 <= fo.elapsed_s <= DEADLINE_S + SLACK_S, fo.elapsed_s
    trace = gateway.wait_trace(fo.trace_id)
    faulty = f"{case.fault}.plain.fo"
    allowed = case.attempt.split("|")
    assert outcomes(trace)[-1] == (BACKUP, "ok")
    assert [m for m, _ in outcomes(trace)[:-1]] == [faulty] * case.attempts, outcomes(trace)
    assert all(o in allowed for _, o in outcomes(trace)[:-1]), outcomes(trace)
    assert [a["retry"] for a in trace["attempts"]] == [*range(case.attempts), 0]
    assert trace["outcome"] == "ok_after_failover"
    assert trace["status"] == 200

    # alone: a clear OpenAI-style error with the documented status
    trace = gateway.wait_trace(alone.trace_id)
    assert [m for m, _ in outcomes(trace)] == [solo(case.fault)] * case.attempts, outcomes(trace)
    assert all(o in allowed for _, o in outcomes(trace)), outcomes(trace)
    status = case.status or documented_status([o for _, o in outcomes(trace)])
    assert alone.status == status, alone.body[:500]
    assert case.min_s * 0.95 <= alone.elapsed_s <= DEADLINE_S + SLACK_S, alone.elapsed_s
    err = alone.error()
    assert err["code"] == CODES[status]
    assert alone.trace_id in err["message"]
    assert trace["outcome"] == OUTCOMES[status]
    assert trace["status"] == status

    if not FAULTS[case.fault].startswith("@"):  # path-addressed: the upstream counts attempts
        assert chaos.requests(spec_key(case.fault, False, "fo")) == case.attempts
        assert chaos.requests(spec_key(case.fault, False, "solo")) == case.attempts


def test_5xx_is_retried_on_the_same_backend_then_succeeds(
    client: httpx.Client, gateway: Gateway, chaos: Chaos
) -> None:
    model = solo("status503_once")
    r = call(client, model)
    assert r.status == 200 and r.headers["x-polyroute-model"] == model
    trace = gateway.wait_trace(r.trace_id)
    assert outcomes(trace) == [(model, "status_503"), (model, "ok")]
    assert trace["outcome"] == "ok_after_retry"  # no other backend was involved
    assert chaos.requests(spec_key("status503_once", False, "solo")) == 2


def test_429_retry_after_is_honoured_on_the_same_backend(
    client: httpx.Client, gateway: Gateway, chaos: Chaos
) -> None:
    model = solo("retry_after_once")
    r = call(client, model)
    assert r.status == 200 and r.headers["x-polyroute-model"] == model
    assert RETRY_AFTER_MAX_S / 2 <= r.elapsed_s <= DEADLINE_S + SLACK_S
    trace = gateway.wait_trace(r.trace_id)
    assert outcomes(trace) == [(model, "status_429"), (model, "ok")]
    assert trace["attempts"][0]["status"] == 429
    assert chaos.requests(spec_key("retry_after_once", False, "solo")) == 2


def test_openai_client_sees_failover_and_openai_errors(gateway: Gateway, load: HealthyLoad) -> None:
    """The official client: a failed-over answer is a normal completion; a failure is an
    ``APIStatusError`` with the status and the OpenAI error code."""
    backstop = DEADLINE_S + SLACK_S + 2
    with gateway.client(timeout_s=backstop) as oai:
        raw = oai.chat.completions.with_raw_response.create(
            model=failover("client_status500"), messages=[{"role": "user", "content": "hi"}]
        )
        completion = raw.parse()
        assert completion.model == BACKUP and completion.choices[0].message.content
        assert raw.headers["x-polyroute-model"] == BACKUP

        with pytest.raises(openai.APIStatusError) as info:
            oai.chat.completions.create(
                model=solo("client_refused"), messages=[{"role": "user", "content": "hi"}]
            )
        assert info.value.status_code == 503
        assert info.value.code == "upstream_unavailable"
        assert info.value.response.headers["x-polyroute-trace-id"] in info.value.message


def test_healthy_load_was_served_throughout(load: HealthyLoad) -> None:
    """Every request of the background load (healthy profile) succeeded, in bounded time,
    while the faults above were being injected.  Keep this test last in the module."""
    load.check(min_requests=20)
