"""``session: sticky``: a Responses conversation continues on the model that answered
its previous turn; ``per_turn`` (the default) routes every turn afresh."""

from __future__ import annotations

import pytest
from fakes import Behaviour, FakeUpstream, gateway_config
from starlette.testclient import TestClient

from polyroute import Engine, parse_config
from polyroute.server import create_app


@pytest.mark.parametrize(("session", "second"), [("sticky", "large"), ("per_turn", "small")])
def test_a_conversation_stays_on_its_model_only_when_sticky(
    upstreams: tuple[FakeUpstream, ...], session: str, second: str
) -> None:
    small, large = upstreams
    config = gateway_config(small.base_url, large.base_url, retries=0)
    config["decisions"] = [
        {"name": "chat", "models": ["small", "large"], "select": "cheapest", "session": session}
    ]
    small.queue = [Behaviour(mode="status", status=503)]  # the first turn fails over to large
    with TestClient(create_app(Engine(parse_config(config)))) as client:
        first = client.post("/v1/responses", json={"model": "auto", "input": "hi"})
        assert first.headers["x-polyroute-model"] == "large"
        turn = {"model": "auto", "input": "and then?", "previous_response_id": first.json()["id"]}
        again = client.post("/v1/responses", json=turn)
    assert again.status_code == 200 and again.headers["x-polyroute-model"] == second
    assert small.requests[-1]["messages"][-1]["content"] == "and then?" or second == "large"
