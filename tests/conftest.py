from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fakes import FakeUpstream, gateway_config, running
from starlette.testclient import TestClient

from polyroute import Engine, parse_config
from polyroute.server import create_app


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
