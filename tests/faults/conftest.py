"""Fixtures of the fault-injection tier: one chaos upstream process and one gateway
process for the session (both on 127.0.0.1, each in its own process group, always
stopped at teardown), and a background healthy load per test module."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from faults.harness import Chaos, HealthyLoad, healthy_load, http_client, start_chaos, start_gateway
from procs import Gateway


@pytest.fixture(scope="session")
def faults_logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("faults-logs")


@pytest.fixture(scope="session")
def chaos(faults_logs: Path) -> Iterator[Chaos]:
    c = start_chaos(faults_logs)
    try:
        yield c
    finally:
        c.proc.stop()


@pytest.fixture(scope="session")
def gateway(chaos: Chaos, faults_logs: Path) -> Iterator[Gateway]:
    gw = start_gateway(chaos, faults_logs)
    try:
        yield gw
    finally:
        gw.proc.stop()


@pytest.fixture(scope="module")
def load(gateway: Gateway) -> Iterator[HealthyLoad]:
    """Healthy traffic for the whole module; each module's last test checks it."""
    with healthy_load(gateway) as running:
        yield running


@pytest.fixture
def client(gateway: Gateway, load: HealthyLoad) -> Iterator[httpx.Client]:
    with http_client(gateway) as c:
        yield c
