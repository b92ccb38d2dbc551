"""Every wire format gets the same failover: a failing first candidate is retried and
then skipped, whether the client speaks Chat Completions, Messages or Responses."""

from __future__ import annotations

from typing import Any

import pytest
from fakes import Behaviour, FakeUpstream

REQUESTS: dict[str, dict[str, Any]] = {
    "/v1/chat/completions": {"model": "auto", "messages": [{"role": "user", "content": "hi"}]},
    "/v1/messages": {
        "model": "auto",
        "max_tokens": 16,
        "messages": [{"role": "user", "content": "hi"}],
    },
    "/v1/responses": {"model": "auto", "input": "hi"},
}


@pytest.mark.parametrize("path", sorted(REQUESTS))
def test_a_dead_first_candidate_fails_over_on_every_protocol(
    make_client: Any, upstreams: tuple[FakeUpstream, ...], path: str
) -> None:
    small, large = upstreams
    small.behaviour = Behaviour(mode="status", status=503)
    r = make_client(retries=1).post(path, json=REQUESTS[path])
    assert r.status_code == 200, r.text
    assert r.headers["x-polyroute-model"] == "large"
    assert len(small.requests) == 2 and len(large.requests) == 1
    text = r.text
    assert "hello from fake (large)" in text


@pytest.mark.parametrize("path", sorted(REQUESTS))
def test_when_every_candidate_fails_the_error_is_explicit(
    make_client: Any, upstreams: tuple[FakeUpstream, ...], path: str
) -> None:
    for upstream in upstreams:
        upstream.behaviour = Behaviour(mode="status", status=503)
    r = make_client(retries=0).post(path, json=REQUESTS[path])
    assert r.status_code == 502  # every candidate answered with an error
    body = r.json()
    error = body["error"]
    assert "trace" in error["message"]
    if path == "/v1/messages":
        assert body["type"] == "error" and error["type"] == "api_error"
