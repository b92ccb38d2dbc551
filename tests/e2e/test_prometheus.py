"""A real Prometheus server scrapes the gateway's ``GET /metrics`` and answers a query.

The gateway is a real ``polyroute serve`` process in front of two in-process fake
upstreams; Prometheus (Debian's ``prometheus`` package) runs on loopback with a
throw-away TSDB, scraping every second.  After the target is up, a few requests go
through the gateway and ``polyroute_requests_total`` must reach that count in
Prometheus.  Every wait is bounded; Prometheus is stopped whatever happens.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from fakes import FakeUpstream, gateway_config, running
from procs import LOOPBACK, Proc, free_port, gateway_running, http_get, start_process

pytestmark = pytest.mark.e2e

PROMETHEUS_READY_TIMEOUT_S = 60.0
SCRAPE_TIMEOUT_S = 60.0  # a busy 2-core CI machine: Prometheus starts and scrapes slowly
REQUESTS = 5


def _prometheus_binary() -> str:
    path = shutil.which("prometheus")
    if path is None:
        reason = "the prometheus binary is not installed (apt-get install prometheus)"
        if os.environ.get("CI", "").lower() not in {"", "0", "false", "no"}:
            pytest.fail(f"e2e prerequisite missing in CI: {reason}", pytrace=False)
        pytest.skip(reason)
    return path


def _query(server: Proc, promql: str) -> list[dict[str, Any]]:
    """The instant-vector result of ``promql`` ([] while Prometheus has no data)."""
    url = f"{server.url}/api/v1/query?{urllib.parse.urlencode({'query': promql})}"
    status, body = http_get(url, timeout_s=5.0)
    assert status == 200, f"{url}: {status} {body[:500]!r}"
    answer = json.loads(body)
    assert answer["status"] == "success", answer
    result: list[dict[str, Any]] = answer["data"]["result"]
    return result


def _wait_value(server: Proc, promql: str, expected: float, what: str) -> list[dict[str, Any]]:
    deadline = time.monotonic() + SCRAPE_TIMEOUT_S
    result: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        result = _query(server, promql)
        if result and float(result[0]["value"][1]) == expected:
            return result
        time.sleep(0.5)
    pytest.fail(
        f"{what}: {promql} never reached {expected} in {SCRAPE_TIMEOUT_S:.0f}s; last {result}"
        f"\n--- prometheus log ---\n{server.log_tail()}"
    )


@pytest.fixture
def upstreams() -> Iterator[tuple[FakeUpstream, ...]]:
    with running(FakeUpstream("small"), FakeUpstream("large")) as ups:
        yield ups


@pytest.fixture
def gateway(upstreams: tuple[FakeUpstream, ...], tmp_path: Path) -> Iterator[Proc]:
    small, large = upstreams
    with gateway_running(
        "gateway-metrics", gateway_config(small.base_url, large.base_url), tmp_path
    ) as gw:
        status, body = http_get(f"{gw.url}/metrics")
        assert status == 200, (
            f"GET /metrics answered {status} (is metrics_route wired?): {body[:200]!r}"
        )
        yield gw


@pytest.fixture
def prometheus(gateway: Proc, tmp_path: Path) -> Iterator[Proc]:
    binary = _prometheus_binary()
    scrape = {
        "job_name": "polyroute",
        "scrape_interval": "1s",
        "scrape_timeout": "1s",
        "metrics_path": "/metrics",
        "static_configs": [{"targets": [f"{LOOPBACK}:{gateway.port}"]}],
    }
    config = tmp_path / "prometheus.yml"
    config.write_text(
        yaml.safe_dump({"global": {"scrape_interval": "1s"}, "scrape_configs": [scrape]})
    )
    port = free_port()
    argv = [
        binary,
        f"--config.file={config}",
        f"--storage.tsdb.path={tmp_path / 'tsdb'}",
        f"--web.listen-address={LOOPBACK}:{port}",
    ]
    server = start_process(
        "prometheus", argv, port, "/-/ready", tmp_path, PROMETHEUS_READY_TIMEOUT_S
    )
    try:
        yield server
    finally:
        server.stop()


def test_prometheus_scrapes_the_request_counter(gateway: Proc, prometheus: Proc) -> None:
    _wait_value(prometheus, 'up{job="polyroute"}', 1, "the gateway target is not up")
    body = {"model": "auto", "messages": [{"role": "user", "content": "hello"}]}
    with httpx.Client(base_url=gateway.url, trust_env=False, timeout=30) as client:
        for _ in range(REQUESTS):
            resp = client.post("/v1/chat/completions", json=body)
            assert resp.status_code == 200, resp.text
            assert resp.headers["x-polyroute-model"] == "small"

    promql = 'polyroute_requests_total{job="polyroute",endpoint="chat",status="200"}'
    result = _wait_value(prometheus, promql, REQUESTS, "the request counter")
    assert len(result) == 1, result
    labels = result[0]["metric"]
    assert labels["decision"] == "default"
    assert labels["model"] == "small"

    states = _query(prometheus, 'polyroute_circuit_state{job="polyroute"}')
    assert {r["metric"]["model"]: r["value"][1] for r in states} == {"small": "0", "large": "0"}
