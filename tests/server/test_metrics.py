"""``polyroute.server.metrics``: what a scrape shows after the gateway observed some requests."""

from __future__ import annotations

from typing import Any

import pytest
from fakes import gateway_config
from prometheus_client.parser import text_string_to_metric_families
from starlette.testclient import TestClient

from polyroute import Engine, parse_config
from polyroute.server import create_app
from polyroute.server.metrics import Metrics, metrics_route
from polyroute.types import Attempt, Trace

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


class _Trace(Trace):
    """A trace that accepts the usage fields whether or not ``Trace`` declares them yet."""


def _engine() -> Engine:
    return Engine(parse_config(gateway_config("http://127.0.0.1:9/v1", "http://127.0.0.1:9/v1")))


def _samples(metrics: Metrics) -> Samples:
    body, content_type = metrics.render()
    assert content_type.startswith("text/plain")
    out: Samples = {}
    for family in text_string_to_metric_families(body.decode()):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def _get(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def _trace(
    model: str = "small", decision: str = "default", *attempts: Attempt, **extra: Any
) -> Trace:
    trace = _Trace("t", decision=decision, model=model, outcome="ok", overhead_ms=2.0)
    trace.attempts = list(attempts) or [Attempt(model, "ok", 10.0, 200)]
    for name, value in extra.items():
        setattr(trace, name, value)
    return trace


@pytest.fixture
def metrics() -> Metrics:
    return Metrics.for_engine(_engine())


def test_requests_are_counted_by_endpoint_decision_model_and_status(metrics: Metrics) -> None:
    for _ in range(3):
        metrics.observe(_trace(), 200, "chat", False, 0.05)
    metrics.observe(_trace("large", "hard-math"), 200, "completions", True, 0.5)
    metrics.observe(_trace("", "default", Attempt("small", "timeout", 5.0)), 504, "chat", False, 5)
    s = _samples(metrics)
    name = "polyroute_requests_total"
    assert _get(s, name, endpoint="chat", decision="default", model="small", status="200") == 3
    assert (
        _get(s, name, endpoint="completions", decision="hard-math", model="large", status="200")
        == 1
    )
    assert _get(s, name, endpoint="chat", decision="default", model="none", status="504") == 1
    duration = "polyroute_request_duration_seconds_count"
    assert _get(s, duration, endpoint="chat", stream="false") == 4
    assert _get(s, duration, endpoint="completions", stream="true") == 1
    assert _get(s, "polyroute_request_duration_seconds_sum", endpoint="completions", stream="true")
    assert _get(s, "polyroute_overhead_seconds_count") == 5
    assert _get(s, "polyroute_overhead_seconds_sum") == pytest.approx(0.010)
    assert _get(s, "polyroute_overhead_seconds_bucket", le="0.0025") == 5


def test_labels_stay_bounded(metrics: Metrics) -> None:
    """Names a client chose, or nobody configured, never become label values."""
    for i in range(50):
        trace = _trace(f"client-model-{i}", f"made-up-{i}", Attempt(f"x{i}", "ok", 1.0))
        metrics.observe(trace, 200, f"/weird/{i}", False, 0.01)
    metrics.observe(_trace("", ""), 400, "chat", False, 0.001)
    s = _samples(metrics)
    name = "polyroute_requests_total"
    unknown = {"endpoint": "unknown", "decision": "unknown", "model": "unknown"}
    assert _get(s, name, **unknown, status="200") == 50
    assert _get(s, name, endpoint="chat", decision="none", model="none", status="400") == 1
    assert _get(s, "polyroute_upstream_attempts_total", model="unknown", outcome="ok") == 50
    assert not [k for k in s if any("client-model" in v or "made-up" in v for _, v in k[1])]


def test_direct_model_decisions_are_known(metrics: Metrics) -> None:
    metrics.observe(_trace("large", "direct:large"), 200, "chat", False, 0.1)
    s = _samples(metrics)
    assert (
        _get(
            s,
            "polyroute_requests_total",
            endpoint="chat",
            decision="direct:large",
            model="large",
            status="200",
        )
        == 1
    )


def test_attempts_retries_and_failovers(metrics: Metrics) -> None:
    failed_over = _trace(
        "small",
        "hard-math",
        Attempt("large", "status", 3.0, 503),
        Attempt("large", "status", 3.0, 503, retry=1),
        Attempt("small", "ok", 8.0, 200),
    )
    retried = _trace(
        "small", "default", Attempt("small", "timeout", 3.0), Attempt("small", "ok", 3.0, retry=1)
    )
    metrics.observe(failed_over, 200, "chat", False, 0.1)
    metrics.observe(retried, 200, "chat", False, 0.1)
    metrics.observe(_trace(), 200, "chat", False, 0.1)
    s = _samples(metrics)
    attempts = "polyroute_upstream_attempts_total"
    assert _get(s, attempts, model="large", outcome="status") == 2
    assert _get(s, attempts, model="small", outcome="ok") == 3
    assert _get(s, attempts, model="small", outcome="timeout") == 1
    assert _get(s, "polyroute_retries_total", model="large") == 1
    assert _get(s, "polyroute_retries_total", model="small") == 1
    assert _get(s, "polyroute_failovers_total") == 1


def test_tokens_cost_and_cache(metrics: Metrics) -> None:
    usage = {"input_tokens": 12, "output_tokens": 30, "cost_usd": 0.0015}
    metrics.observe(_trace("large", "hard-math", cache="miss", **usage), 200, "chat", False, 1)
    metrics.observe(_trace("large", "hard-math", cache="hit", **usage), 200, "chat", False, 1)
    metrics.observe(_trace("small", cost_usd=None), 200, "chat", False, 1)  # no usage known
    s = _samples(metrics)
    assert _get(s, "polyroute_tokens_total", model="large", direction="input") == 24
    assert _get(s, "polyroute_tokens_total", model="large", direction="output") == 60
    assert _get(s, "polyroute_cost_usd_total", model="large") == pytest.approx(0.003)
    assert _get(s, "polyroute_tokens_total", model="small", direction="input") == 0
    assert _get(s, "polyroute_cost_usd_total", model="small") == 0
    assert _get(s, "polyroute_cache_total", result="hit") == 1
    assert _get(s, "polyroute_cache_total", result="miss") == 1


def test_circuit_state_and_in_flight_are_read_at_scrape_time() -> None:
    engine = _engine()
    metrics = Metrics.for_engine(engine)
    s = _samples(metrics)
    assert _get(s, "polyroute_circuit_state", model="small") == 0
    assert _get(s, "polyroute_circuit_state", model="large") == 0
    large = engine.backends["large"]
    for _ in range(large.breaker.failure_threshold):
        large.breaker.record_failure()
    engine.backends["small"].stats.in_flight = 3
    s = _samples(metrics)
    assert _get(s, "polyroute_circuit_state", model="large") == 2
    assert _get(s, "polyroute_in_flight", model="small") == 3
    large.breaker.opened_at -= large.breaker.reset_timeout_s
    assert _get(_samples(metrics), "polyroute_circuit_state", model="large") == 1


def test_two_instances_do_not_share_series() -> None:
    first, second = Metrics.for_engine(_engine()), Metrics.for_engine(_engine())
    first.observe(_trace(), 200, "chat", False, 0.1)
    labels = {"endpoint": "chat", "decision": "default", "model": "small", "status": "200"}
    assert _get(_samples(first), "polyroute_requests_total", **labels) == 1
    assert _get(_samples(second), "polyroute_requests_total", **labels) == 0


def test_the_route_serves_the_exposition_with_gateway_in_flight() -> None:
    engine = _engine()
    metrics = Metrics.for_engine(engine)
    app = create_app(engine)
    app.router.routes.insert(0, metrics_route(metrics))  # ahead of any /metrics of its own
    with TestClient(app) as client:
        assert client.get("/healthz").status_code == 200  # builds the middleware stack
        metrics.observe(_trace(), 200, "chat", False, 0.1)
        resp = client.get("/metrics")
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/plain; version=0.0.4")
    text = resp.text
    assert "polyroute_requests_in_flight 0.0" in text
    assert "polyroute_concurrency_refused_total 0.0" in text
    assert 'polyroute_circuit_state{model="large"} 0.0' in text
    line = 'polyroute_requests_total{decision="default",endpoint="chat",model="small",status="200"}'
    assert f"{line} 1.0" in text


def _scrape(client: TestClient) -> Samples:
    resp = client.get("/metrics")
    assert resp.status_code == 200, resp.text
    out: Samples = {}
    for family in text_string_to_metric_families(resp.text):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def test_the_gateway_counts_plain_streamed_and_refused_requests(make_client: Any) -> None:
    client = make_client()
    chat = {"model": "auto", "messages": [{"role": "user", "content": "hi"}]}
    assert client.post("/v1/chat/completions", json=chat).status_code == 200
    with client.stream("POST", "/v1/chat/completions", json={**chat, "stream": True}) as resp:
        assert resp.status_code == 200
        assert b"[DONE]" in resp.read()
    missing = {**chat, "model": "no-such-model"}
    assert client.post("/v1/chat/completions", json=missing).status_code == 404
    s = _scrape(client)
    name = "polyroute_requests_total"
    ok = {"endpoint": "chat", "decision": "default", "model": "small", "status": "200"}
    assert _get(s, name, **ok) == 2
    assert _get(s, name, endpoint="chat", decision="none", model="none", status="404") == 1
    assert not [k for k in s if any("no-such-model" in v for _, v in k[1])]
    duration = "polyroute_request_duration_seconds_count"
    assert _get(s, duration, endpoint="chat", stream="true") == 1
    assert _get(s, duration, endpoint="chat", stream="false") == 2
    assert _get(s, "polyroute_upstream_attempts_total", model="small", outcome="ok") == 2
    assert _get(s, "polyroute_requests_in_flight") == 0
