"""A real ``polyroute serve`` with a ``similarity`` route: requests that paraphrase the
route's examples go to its model, everything else to the default one."""

from __future__ import annotations

import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from fakes import FakeUpstream, running
from procs import Proc, gateway_running

pytest.importorskip("onnxruntime")  # the static table is distilled from MiniLM once

TIMEOUT_S = 30.0
_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))
BILLING = [
    "I was charged twice for my subscription",
    "how do I get a refund for my order",
    "update the credit card on my account",
]


@pytest.fixture(scope="module")
def served(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Proc, FakeUpstream, FakeUpstream]]:
    from polyroute.embed import make_encoder

    make_encoder("static").encode(["warm the table"])  # distilled here, not at start-up
    logs: Path = tmp_path_factory.mktemp("similarity-gateway")
    with running(FakeUpstream("general"), FakeUpstream("support")) as (general, support):
        config: dict[str, Any] = {
            "models": {"general": {"base_url": general.base_url},
                       "support": {"base_url": support.base_url}},
            "signals": {"billing": {"type": "similarity", "examples": BILLING}},
            "decisions": [
                {"name": "billing", "priority": 10, "when": "billing", "models": ["support"]},
                {"name": "default", "when": True, "models": ["general"]},
            ],
        }  # fmt: skip
        with gateway_running("gateway-similarity", config, logs) as proc:
            yield proc, general, support


def chat(url: str, text: str) -> tuple[int, str, str]:
    body = orjson.dumps({"model": "auto", "messages": [{"role": "user", "content": text}]})
    request = urllib.request.Request(
        url + "/v1/chat/completions", data=body, headers={"content-type": "application/json"}
    )
    with _NO_PROXY.open(request, timeout=TIMEOUT_S) as resp:
        answer = orjson.loads(resp.read())
        return int(resp.status), resp.headers.get("x-polyroute-decision", ""), answer["model"]


def test_paraphrases_take_the_route(served: tuple[Proc, FakeUpstream, FakeUpstream]) -> None:
    proc, general, support = served
    assert chat(proc.url, "I need a refund, you billed me two times") == (
        200, "billing", "support"
    )  # fmt: skip
    assert chat(proc.url, "What is the capital of Australia?") == (200, "default", "general")
    assert [r["messages"][0]["content"] for r in support.requests] == [
        "I need a refund, you billed me two times"
    ]
    assert len(general.requests) == 1
    assert proc.alive()
