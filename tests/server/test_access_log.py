"""The access log line and request ids: every endpoint logged, errors included, with
``ts``, ``request_id`` (the client's ``x-request-id`` echoed back), usage and cost."""

from __future__ import annotations

import json
import logging
import re
from typing import Any

import pytest
from fakes import FakeUpstream


def chat(prompt: str, **extra: Any) -> dict[str, Any]:
    return {"model": "auto", "messages": [{"role": "user", "content": prompt}], **extra}


def lines(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    return [json.loads(r.getMessage()) for r in caplog.records if r.name == "polyroute.access"]


def test_a_model_call_logs_ts_request_id_usage_and_cost(
    make_client: Any, upstreams: tuple[FakeUpstream, ...], caplog: pytest.LogCaptureFixture
) -> None:
    client = make_client()
    with caplog.at_level(logging.INFO, logger="polyroute.access"):
        given = client.post(
            "/v1/chat/completions", json=chat("hi"), headers={"x-request-id": "req-42"}
        )
        made = client.post("/v1/chat/completions", json=chat("hi"))
        bad = client.post(
            "/v1/chat/completions", json=chat("hi"), headers={"x-request-id": "bad\tid"}
        )
    assert given.headers["x-request-id"] == "req-42"
    assert made.headers["x-request-id"] == made.headers["x-polyroute-trace-id"]
    assert bad.headers["x-request-id"] == bad.headers["x-polyroute-trace-id"]
    first = lines(caplog)[0]
    assert first["request_id"] == "req-42" and first["endpoint"] == "chat"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", first["ts"])
    assert first["usage"] == {"input_tokens": 3, "output_tokens": 4}
    assert first["cost_source"] == "usage" and first["cost_usd"] == pytest.approx(7 * 0.1e-6)


def test_every_endpoint_is_logged_errors_included(
    make_client: Any, caplog: pytest.LogCaptureFixture
) -> None:
    client = make_client()
    with caplog.at_level(logging.INFO, logger="polyroute.access"):
        assert client.get("/v1/models").status_code == 200
        assert client.get("/v1/models/auto").json()["id"] == "auto"
        missing = client.get("/v1/models/nope")
        assert client.post("/v1/route", json={"prompt": "prove it"}).status_code == 200
        assert client.post("/v1/route", content=b"{not json").status_code == 400
        assert client.post("/v1/chat/completions", content=b"[]").status_code == 400
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "model_not_found"
    logged = [(line["endpoint"], line["status"]) for line in lines(caplog)]
    assert logged == [
        ("models", 200),
        ("models", 200),
        ("models", 404),
        ("route", 200),
        ("route", 400),
        ("chat", 400),
    ]
