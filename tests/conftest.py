from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fakes import FakeUpstream, running
from starlette.testclient import TestClient

from polyroute import Engine, parse_config
from polyroute.server import create_app


def gateway_config(small: str, large: str, **server: Any) -> dict[str, Any]:
    return {
        "models": {
            "small": {"base_url": small, "input_price_per_mtok": 0.1, "output_price_per_mtok": 0.1},
            "large": {
                "base_url": large,
                "model": "my-large-model",
                "api_key": "sk-secret-large-key",
                "timeout_s": 2,
                "input_price_per_mtok": 3.0,
                "output_price_per_mtok": 15.0,
            },
        },
        "signals": {"math": {"type": "keyword", "any": ["prove", "integral", "theorem"]}},
        "decisions": [
            {"name": "hard-math", "priority": 10, "when": "math", "models": ["large", "small"]},
            {"name": "default", "when": True, "models": ["small", "large"], "select": "cheapest"},
        ],
        "server": {"backoff_base_s": 0.001, "backoff_max_s": 0.01, "deadline_s": 5, **server},
    }


@pytest.fixture
def upstreams() -> Iterator[tuple[FakeUpstream, FakeUpstream]]:
    with running(FakeUpstream("small"), FakeUpstream("large")) as ups:
        yield ups  # type: ignore[misc]


@pytest.fixture
def make_client(upstreams: tuple[FakeUpstream, FakeUpstream]) -> Iterator[Any]:
    clients: list[TestClient] = []

    def make(**server: Any) -> TestClient:
        small, large = upstreams
        engine = Engine(parse_config(gateway_config(small.base_url, large.base_url, **server)))
        client = TestClient(create_app(engine), raise_server_exceptions=False)
        client.__enter__()
        clients.append(client)
        return client

    yield make
    for c in clients:
        c.__exit__(None, None, None)
