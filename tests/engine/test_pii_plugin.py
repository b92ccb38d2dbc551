"""The ``pii`` plugin in the pipeline: what the upstream receives, what the client gets back."""

from __future__ import annotations

from typing import Any

import pytest
from fakes import Behaviour, FakeUpstream, gateway_config

from polyroute import Engine, Request, parse_config
from polyroute.errors import Blocked, ConfigError
from polyroute.types import Trace

PROMPT = (
    "Mail jane.doe@example.com or call +1 415 555 0132; card 4111 1111 1111 1111. "
    "Again: jane.doe@example.com"
)
VALUES = ("jane.doe@example.com", "415 555 0132", "4111 1111 1111 1111")


def engine_for(upstreams: tuple[FakeUpstream, ...], plugin: dict[str, Any]) -> Engine:
    config = gateway_config(upstreams[0].base_url, upstreams[1].base_url)
    config["plugins"] = [plugin]
    return Engine(parse_config(config))


async def test_redacts_before_the_upstream_and_restores_nothing_by_default(
    upstreams: tuple[FakeUpstream, ...],
) -> None:
    upstreams[0].behaviour = Behaviour(mode="echo")
    engine = engine_for(upstreams, {"type": "pii"})
    trace = Trace("t")
    try:
        answer, _ = await engine.complete(Request.chat(PROMPT), trace)
    finally:
        await engine.aclose()
    sent = upstreams[0].requests[-1]["messages"][-1]["content"]
    assert not any(v in sent for v in VALUES)
    assert sent.count("<EMAIL_ADDRESS_1>") == 2 and "<CREDIT_CARD_1>" in sent
    assert answer["choices"][0]["message"]["content"] == sent  # nothing restored
    event = trace.events[0]
    assert event["action"] == "redacted" and event["values"] == 3
    assert "jane" not in str(trace.as_dict())  # the trace never holds the values


@pytest.mark.parametrize("chunk_chars", [1, 3, 7, 1000])
async def test_restore_gives_the_values_back_whole_and_streamed(
    upstreams: tuple[FakeUpstream, ...], chunk_chars: int
) -> None:
    upstreams[0].behaviour = Behaviour(mode="echo", chunks=chunk_chars)
    engine = engine_for(upstreams, {"type": "pii", "restore": True})
    try:
        answer, _ = await engine.complete(Request.chat(PROMPT))
        start, _ = await engine.stream(Request.chat(PROMPT, stream=True))
        chunks = [start.first] + [c async for c in start.rest]
    finally:
        await engine.aclose()
    assert answer["choices"][0]["message"]["content"] == PROMPT
    streamed = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks)
    assert streamed == PROMPT
    for request in upstreams[0].requests:
        assert not any(v in request["messages"][-1]["content"] for v in VALUES)


async def test_refuse_and_options(upstreams: tuple[FakeUpstream, ...]) -> None:
    plugin = {"type": "pii", "entities": ["US_SSN"], "action": "refuse", "status": 422}
    engine = engine_for(upstreams, plugin)
    try:
        with pytest.raises(Blocked) as info:
            await engine.complete(Request.chat("my SSN is 536-22-1234"))
        answer, _ = await engine.complete(Request.chat(PROMPT))  # no SSN: passes untouched
    finally:
        await engine.aclose()
    assert info.value.status == 422 and info.value.code == "pii_refused"
    assert answer["model"] == "small" and len(upstreams[0].requests) == 1
    assert upstreams[0].requests[0]["messages"][-1]["content"] == PROMPT
    with pytest.raises(ConfigError, match=r"plugins\[0\]\.entities: .*unknown entity"):
        engine_for(upstreams, {"type": "pii", "entities": ["SHOE_SIZE"]})
