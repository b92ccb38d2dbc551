from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fakes import FakeUpstream, app_clients, gateway_config, running

from polyroute import Engine, parse_config


@pytest.fixture
def upstreams() -> Iterator[tuple[FakeUpstream, FakeUpstream]]:
    with running(FakeUpstream("small"), FakeUpstream("large")) as ups:
        yield ups  # type: ignore[misc]


@pytest.fixture
def make_client(upstreams: tuple[FakeUpstream, FakeUpstream]) -> Iterator[Any]:
    small, large = upstreams
    with app_clients(raise_server_exceptions=False) as open_client:
        yield lambda **server: open_client(
            Engine(parse_config(gateway_config(small.base_url, large.base_url, **server)))
        )
