"""A real ``polyroute serve`` with a ``pii`` signal: a prompt with a card number goes to
the local model, a plain prompt to the cloud one."""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from fakes import FakeUpstream, running
from procs import Proc, gateway_running

_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def chat(url: str, text: str) -> tuple[int, dict[str, Any]]:
    body = orjson.dumps({"model": "auto", "messages": [{"role": "user", "content": text}]})
    request = urllib.request.Request(
        url + "/v1/chat/completions", data=body, headers={"content-type": "application/json"}
    )
    try:
        with _NO_PROXY.open(request, timeout=30.0) as resp:
            return int(resp.status), orjson.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return int(exc.code), orjson.loads(exc.read())


@pytest.fixture(scope="module")
def served(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Proc, FakeUpstream, FakeUpstream]]:
    logs: Path = tmp_path_factory.mktemp("pii-gateway")
    with running(FakeUpstream("local"), FakeUpstream("cloud")) as (local, cloud):
        config: dict[str, Any] = {
            "models": {"local": {"base_url": local.base_url},
                       "cloud": {"base_url": cloud.base_url}},
            "signals": {"pii": {"type": "pii"}},
            "decisions": [
                {"name": "private", "priority": 10,
                 "when": {"signal": "pii", "contains": "CREDIT_CARD"}, "models": ["local"]},
                {"name": "default", "when": True, "models": ["cloud"]},
            ],
        }  # fmt: skip
        with gateway_running("gateway-pii", config, logs) as proc:
            yield proc, local, cloud


def test_card_number_goes_local_plain_prompt_does_not(
    served: tuple[Proc, FakeUpstream, FakeUpstream],
) -> None:
    proc, local, cloud = served
    status, answer = chat(proc.url, "Charge my card 4111 1111 1111 1111 for the order")
    assert status == 200 and answer["model"] == "local", answer
    status, answer = chat(proc.url, "What is the capital of France?")
    assert status == 200 and answer["model"] == "cloud", answer
    status, answer = chat(proc.url, "Order number 4111 1111 1111 1112")  # fails Luhn
    assert status == 200 and answer["model"] == "cloud", answer
    assert len(local.requests) == 1 and len(cloud.requests) == 2
    assert proc.alive()
