"""Failover through real processes: one of two llama.cpp backends is killed mid-session.

The decision ``failover`` lists ``primary`` (a llama server this module owns)
then ``backup`` (the shared small server).  After ``primary`` is SIGKILLed,
requests keep succeeding through ``backup``, plain and streaming, and the
gateway's trace records the failed attempt on ``primary``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest
from openai import OpenAI, Stream
from openai.types.chat import ChatCompletionMessageParam
from procs import find_trace

if TYPE_CHECKING:
    from tests.e2e.conftest import Gateway, GatewayFactory, LlamaFactory, Proc

pytestmark = pytest.mark.e2e

PROMPT: list[ChatCompletionMessageParam] = [{"role": "user", "content": "Say hello."}]
REQUESTS_AFTER_KILL = 8  # beyond the default breaker threshold, so it opens on the way


def _model(upstream: Proc) -> dict[str, Any]:
    return {"provider": "openai", "base_url": f"{upstream.url}/v1", "timeout_s": 30}


@pytest.fixture(scope="module")
def victim(llama_factory: LlamaFactory) -> Proc:
    return llama_factory("llama-victim")


@pytest.fixture(scope="module")
def failover_gateway(gateway_factory: GatewayFactory, victim: Proc, llama_small: Proc) -> Gateway:
    config: dict[str, Any] = {
        "models": {"primary": _model(victim), "backup": _model(llama_small)},
        "decisions": [
            {"name": "failover", "when": True, "models": ["primary", "backup"], "select": "static"}
        ],
    }
    return gateway_factory("gateway-failover", config)


@pytest.fixture(scope="module")
def fclient(failover_gateway: Gateway) -> Iterator[OpenAI]:
    with failover_gateway.client() as c:
        yield c


def test_primary_answers_while_alive(fclient: OpenAI) -> None:
    raw = fclient.chat.completions.with_raw_response.create(
        model="auto", messages=PROMPT, max_tokens=8, temperature=0
    )
    assert raw.headers["x-polyroute-model"] == "primary"
    assert raw.headers["x-polyroute-decision"] == "failover"


def test_killed_backend_fails_over(
    fclient: OpenAI, failover_gateway: Gateway, victim: Proc
) -> None:
    victim.kill()
    assert not victim.alive()

    raw = fclient.chat.completions.with_raw_response.create(
        model="auto", messages=PROMPT, max_tokens=8, temperature=0
    )
    assert raw.headers["x-polyroute-model"] == "backup"
    assert raw.headers["x-polyroute-decision"] == "failover"
    completion = raw.parse()
    assert completion.model == "backup"
    assert completion.choices[0].message.content

    trace_id = raw.headers["x-polyroute-trace-id"]
    trace = find_trace(failover_gateway.log_records(), trace_id)
    assert trace is not None, f"no trace logged for {trace_id}:\n{failover_gateway.proc.log_tail()}"
    attempts = trace["attempts"]
    assert attempts[0]["model"] == "primary", attempts
    assert attempts[0]["outcome"] != "ok", attempts
    assert attempts[-1]["model"] == "backup", attempts
    assert attempts[-1]["outcome"] == "ok", attempts
    assert trace["model"] == "backup"


def test_streaming_fails_over_before_first_byte(fclient: OpenAI, victim: Proc) -> None:
    assert not victim.alive()
    raw = fclient.chat.completions.with_raw_response.create(
        model="auto", messages=PROMPT, max_tokens=8, temperature=0, stream=True
    )
    assert raw.headers["x-polyroute-model"] == "backup"
    text = []
    finish = None
    stream = raw.parse()
    assert isinstance(stream, Stream)
    with stream:
        for chunk in stream:
            for choice in chunk.choices:
                text.append(choice.delta.content or "")
                finish = choice.finish_reason or finish
    assert "".join(text).strip()
    assert finish in {"stop", "length"}


def test_every_request_after_the_kill_succeeds(
    fclient: OpenAI, failover_gateway: Gateway, victim: Proc
) -> None:
    assert not victim.alive()
    models = []
    trace_id = ""
    for _ in range(REQUESTS_AFTER_KILL):
        raw = fclient.chat.completions.with_raw_response.create(
            model="auto", messages=PROMPT, max_tokens=4, temperature=0
        )
        models.append(raw.headers["x-polyroute-model"])
        trace_id = raw.headers["x-polyroute-trace-id"]
        assert raw.parse().choices[0].message is not None
    assert models == ["backup"] * REQUESTS_AFTER_KILL
    # By now the dead backend's circuit breaker is open: it is not even tried.
    trace = find_trace(failover_gateway.log_records(), trace_id)
    assert trace is not None
    assert [a["model"] for a in trace["attempts"]] == ["backup"], trace["attempts"]
