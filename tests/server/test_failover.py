from __future__ import annotations

import logging
from typing import Any

import pytest
from fakes import Behaviour, FakeUpstream


def chat(prompt: str, **extra: Any) -> dict[str, Any]:
    return {"model": "auto", "messages": [{"role": "user", "content": prompt}], **extra}


def test_5xx_is_retried_then_succeeds(
    make_client: Any, upstreams: tuple[FakeUpstream, ...]
) -> None:
    small = upstreams[0]
    small.queue = [Behaviour(mode="status", status=503)]
    r = make_client().post("/v1/chat/completions", json=chat("hi"))
    assert r.status_code == 200 and r.headers["x-polyroute-model"] == "small"
    assert len(small.requests) == 2


def test_fails_over_after_retries(make_client: Any, upstreams: tuple[FakeUpstream, ...]) -> None:
    small, large = upstreams
    small.behaviour = Behaviour(mode="status", status=500)
    r = make_client(retries=1).post("/v1/chat/completions", json=chat("hi"))
    assert r.status_code == 200
    assert r.headers["x-polyroute-model"] == "large"
    assert len(small.requests) == 2 and len(large.requests) == 1


def test_trace_log_says_what_happened(
    make_client: Any, upstreams: tuple[FakeUpstream, ...], caplog: pytest.LogCaptureFixture
) -> None:
    upstreams[0].behaviour = Behaviour(mode="status", status=502)
    with caplog.at_level(logging.INFO, logger="polyroute.access"):
        make_client(retries=0).post("/v1/chat/completions", json=chat("hi"))
    line = caplog.records[-1].getMessage()
    assert '"outcome":"ok_after_failover"' in line
    assert '"outcome":"status_502"' in line and '"model":"large"' in line
    assert "sk-secret-large-key" not in line


def test_429_retry_after_is_honoured(make_client: Any, upstreams: tuple[FakeUpstream, ...]) -> None:
    small = upstreams[0]
    small.queue = [Behaviour(mode="status", status=429, retry_after="0.2")]
    client = make_client()
    import time

    t0 = time.perf_counter()
    r = client.post("/v1/chat/completions", json=chat("hi"))
    assert r.status_code == 200 and r.headers["x-polyroute-model"] == "small"
    assert time.perf_counter() - t0 >= 0.2


def test_long_retry_after_moves_to_next_candidate(
    make_client: Any, upstreams: tuple[FakeUpstream, ...]
) -> None:
    upstreams[0].behaviour = Behaviour(mode="status", status=429, retry_after="120")
    r = make_client().post("/v1/chat/completions", json=chat("hi"))
    assert r.headers["x-polyroute-model"] == "large"
    assert len(upstreams[0].requests) == 1


def test_timeout_fails_over(make_client: Any, upstreams: tuple[FakeUpstream, ...]) -> None:
    large = upstreams[1]  # timeout_s: 2 in the test config
    large.behaviour = Behaviour(mode="hang")
    r = make_client(retries=0).post("/v1/chat/completions", json=chat("prove it"))
    assert r.status_code == 200 and r.headers["x-polyroute-model"] == "small"


def test_all_failed_is_502_with_trace_id(
    make_client: Any, upstreams: tuple[FakeUpstream, ...]
) -> None:
    for up in upstreams:
        up.behaviour = Behaviour(mode="status", status=500)
    r = make_client(retries=0).post("/v1/chat/completions", json=chat("hi"))
    assert r.status_code == 502
    assert r.headers["x-polyroute-trace-id"] in r.json()["error"]["message"]


def test_deadline_gives_504(make_client: Any, upstreams: tuple[FakeUpstream, ...]) -> None:
    for up in upstreams:
        up.behaviour = Behaviour(mode="hang")
    r = make_client(retries=0, deadline_s=0.5).post("/v1/chat/completions", json=chat("hi"))
    assert r.status_code == 504
    assert r.json()["error"]["code"] == "upstream_timeout"


def test_connection_refused_is_503(make_client: Any, upstreams: tuple[FakeUpstream, ...]) -> None:
    client = make_client(retries=0)
    for up in upstreams:
        up.port = 1  # nothing listens there; the engine captured URLs already, so patch providers
    for backend in client.app.state.engine.backends.values():
        backend.provider.base_url = "http://127.0.0.1:1/v1"
    r = client.post("/v1/chat/completions", json=chat("hi"))
    assert r.status_code == 503
    assert r.json()["error"]["code"] == "upstream_unavailable"


def test_client_error_from_upstream_is_passed_through(
    make_client: Any, upstreams: tuple[FakeUpstream, ...]
) -> None:
    upstreams[0].behaviour = Behaviour(mode="status", status=400)
    r = make_client().post("/v1/chat/completions", json=chat("hi"))
    assert r.status_code == 400
    assert len(upstreams[0].requests) == 1 and not upstreams[1].requests


def test_malformed_upstream_json_fails_over(
    make_client: Any, upstreams: tuple[FakeUpstream, ...]
) -> None:
    upstreams[0].behaviour = Behaviour(mode="malformed")
    r = make_client(retries=0).post("/v1/chat/completions", json=chat("hi"))
    assert r.status_code == 200 and r.headers["x-polyroute-model"] == "large"


def test_circuit_opens_and_skips_backend(
    make_client: Any, upstreams: tuple[FakeUpstream, ...]
) -> None:
    small = upstreams[0]
    small.behaviour = Behaviour(mode="status", status=500)
    client = make_client(retries=0, breaker_failures=2, breaker_reset_s=60)
    for _ in range(2):
        client.post("/v1/chat/completions", json=chat("hi"))
    assert len(small.requests) == 2
    r = client.post("/v1/chat/completions", json=chat("hi"))
    assert r.headers["x-polyroute-model"] == "large"
    assert len(small.requests) == 2  # not contacted: circuit open
    assert client.get("/readyz").json()["backends"]["small"] == "open"


def test_stream_fails_over_before_first_byte(
    make_client: Any, upstreams: tuple[FakeUpstream, ...]
) -> None:
    upstreams[0].behaviour = Behaviour(mode="status", status=503)
    client = make_client(retries=0)
    with client.stream("POST", "/v1/chat/completions", json=chat("hi", stream=True)) as r:
        assert r.status_code == 200 and r.headers["x-polyroute-model"] == "large"
        lines = [ln for ln in r.iter_lines() if ln]
    assert lines[-1] == "data: [DONE]"
