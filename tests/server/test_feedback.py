"""``POST /v1/feedback`` and the trace log: ratings attach to a tenant's own served
requests; implicit signals are recorded; a store that is down never fails a request."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fakes import Behaviour, FakeUpstream, app_clients, gateway_config
from starlette.testclient import TestClient

from polyroute import Engine, parse_config
from polyroute.server import create_app
from polyroute.server.security import hash_key

KEY_A = "pr-test-key-alpha-0123456789"
KEY_B = "pr-test-key-bravo-0123456789"
KEYS = [
    {"name": "team-a", "sha256": hash_key(KEY_A)},
    {"name": "team-b", "sha256": hash_key(KEY_B)},
]
BODY = {"model": "auto", "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture
def make(
    upstreams: tuple[FakeUpstream, FakeUpstream], tmp_path: Path
) -> Iterator[Callable[..., tuple[TestClient, Engine]]]:
    small, large = upstreams
    with app_clients() as open_client:

        def build(
            feedback: dict[str, Any] | None = None, **server: Any
        ) -> tuple[TestClient, Engine]:
            config = gateway_config(small.base_url, large.base_url, **server)
            fb = feedback or {"store": {"type": "sqlite", "path": str(tmp_path / "fb.sqlite3")}}
            engine = Engine(parse_config({**config, "feedback": fb}))
            return open_client(engine), engine

        yield build


def record(client: TestClient, engine: Engine, trace_id: str, tenant: str = "") -> Any:
    """The stored record (the write happens after the answer: poll briefly)."""
    log = engine.trace_log
    assert log is not None
    deadline = time.monotonic() + 5
    while True:
        try:
            return client.portal.call(log.get, tenant, trace_id)  # type: ignore[union-attr]
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def test_a_rating_attaches_to_the_served_request(make: Any) -> None:
    client, engine = make()
    r = client.post("/v1/chat/completions", json=BODY)
    trace_id = r.headers["x-polyroute-trace-id"]
    before = record(client, engine, trace_id)
    assert before["model"] == "small" and before["feedback"] is None
    assert "prompt" not in before  # never stored unless the config says so
    assert (
        client.post("/v1/feedback", json={"trace_id": trace_id, "score": 0.25}).status_code == 204
    )
    r = client.post("/v1/feedback", json={"trace_id": trace_id, "label": "bad", "comment": "no"})
    assert r.status_code == 204 and r.content == b""
    after = record(client, engine, trace_id)
    assert after["feedback"]["score"] == 0.0 and after["feedback"]["count"] == 2  # the last counts
    assert after["feedback"]["comment"] == "no"


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"score": 0.5}, "trace_id"),
        ({"trace_id": "x"}, "score"),
        ({"trace_id": "x", "score": 1.5}, "score"),
        ({"trace_id": "x", "score": True}, "score"),
        ({"trace_id": "x", "label": "meh"}, "label"),
        ({"trace_id": "x", "label": {}}, "label"),
        ({"trace_id": "x", "score": 1, "label": "good"}, "score"),
        ({"trace_id": "x", "score": 1, "extra": 1}, "extra"),
        ({"trace_id": "x", "score": 1, "comment": 5}, "comment"),
    ],
)
def test_a_malformed_body_is_a_400_naming_the_field(
    make: Any, body: dict[str, Any], param: str
) -> None:
    client, _ = make()
    r = client.post("/v1/feedback", json=body)
    assert r.status_code == 400
    assert r.json()["error"]["param"] == param


def test_unknown_traces_and_other_tenants_traces_are_404(make: Any) -> None:
    client, engine = make(api_keys=KEYS)
    a = {"Authorization": f"Bearer {KEY_A}"}
    b = {"Authorization": f"Bearer {KEY_B}"}
    r = client.post("/v1/chat/completions", json=BODY, headers=a)
    trace_id = r.headers["x-polyroute-trace-id"]
    record(client, engine, trace_id, "team-a")
    rating = {"trace_id": trace_id, "label": "good"}
    assert client.post("/v1/feedback", json=rating).status_code == 401
    assert client.post("/v1/feedback", json=rating, headers=b).status_code == 404
    assert client.post("/v1/feedback", json=rating, headers=a).status_code == 204
    r = client.post("/v1/feedback", json={**rating, "trace_id": "nope"}, headers=a)
    assert r.status_code == 404 and r.json()["error"]["code"] == "trace_not_found"


def test_implicit_signals_retry_failure_and_truncation(
    make: Any, upstreams: tuple[FakeUpstream, FakeUpstream]
) -> None:
    small, _ = upstreams
    client, engine = make(retries=0)
    first = client.post("/v1/chat/completions", json=BODY).headers["x-polyroute-trace-id"]
    record(client, engine, first)
    small.behaviour = Behaviour(mode="status", status=503)
    second = client.post("/v1/chat/completions", json=BODY).headers["x-polyroute-trace-id"]
    again = record(client, engine, second)
    assert again["implicit"]["retry_of"] == first
    assert again["implicit"]["upstream_failed"] is True and again["model"] == "large"
    assert record(client, engine, first)["implicit"]["retried"] is True


def test_prompts_are_stored_only_when_asked(make: Any, tmp_path: Path) -> None:
    store = {"type": "sqlite", "path": str(tmp_path / "p.sqlite3")}
    client, engine = make({"store": store, "store_prompts": True})
    trace_id = client.post("/v1/chat/completions", json=BODY).headers["x-polyroute-trace-id"]
    assert record(client, engine, trace_id)["prompt"] == "hi"


def test_a_store_that_is_down_never_fails_a_request(make: Any) -> None:
    down = {"store": {"type": "redis", "url": "redis://127.0.0.1:9/0"}}
    client, _ = make(down)
    r = client.post("/v1/chat/completions", json=BODY)
    assert r.status_code == 200
    r = client.post(
        "/v1/feedback", json={"trace_id": r.headers["x-polyroute-trace-id"], "score": 1}
    )
    assert r.status_code == 503 and r.json()["error"]["code"] == "store_unavailable"


def test_without_a_feedback_section_the_endpoint_says_so(
    upstreams: tuple[FakeUpstream, FakeUpstream],
) -> None:
    small, large = upstreams
    engine = Engine(parse_config(gateway_config(small.base_url, large.base_url)))
    with TestClient(create_app(engine)) as client:
        r = client.post("/v1/feedback", json={"trace_id": "x", "score": 1})
    assert r.status_code == 404 and "feedback:" in r.json()["error"]["message"]


def test_shutdown_lets_trace_log_writes_in_flight_land(
    upstreams: tuple[FakeUpstream, FakeUpstream], tmp_path: Path
) -> None:
    """The gateway stops with a slow write still in flight: it lands before the store
    closes (a restarted gateway on the same file finds the record)."""
    import asyncio

    small, large = upstreams
    config = gateway_config(small.base_url, large.base_url)
    fb = {"store": {"type": "sqlite", "path": str(tmp_path / "fb.sqlite3")}}
    engine = Engine(parse_config({**config, "feedback": fb}))
    log = engine.trace_log
    assert log is not None
    write = log.record

    async def slow_record(*args: Any, **kwargs: Any) -> Any:
        await asyncio.sleep(0.3)
        return await write(*args, **kwargs)

    log.record = slow_record  # type: ignore[method-assign]
    with TestClient(create_app(engine)) as client:
        r = client.post("/v1/chat/completions", json=BODY)
        assert r.status_code == 200
        trace_id = r.headers["x-polyroute-trace-id"]
    again = Engine(parse_config({**config, "feedback": fb}))
    with TestClient(create_app(again)) as client:
        assert record(client, again, trace_id)["model"] == "small"
