"""The engine in-process: route, complete, stream, plugins — no gateway."""

from __future__ import annotations

from typing import Any

import pytest
from fakes import FakeUpstream, gateway_config

from polyroute import Engine, Request, parse_config
from polyroute.errors import Blocked, RoutingError


def engine_for(upstreams: tuple[FakeUpstream, ...], **changes: Any) -> Engine:
    config = gateway_config(upstreams[0].base_url, upstreams[1].base_url)
    config.update(changes)
    return Engine(parse_config(config))


async def test_complete_and_stream(upstreams: tuple[FakeUpstream, ...]) -> None:
    engine = engine_for(upstreams)
    try:
        answer, trace = await engine.complete(Request.chat("prove it"))
        assert answer["model"] == "large" and trace.decision == "hard-math"
        assert trace.outcome == "ok" and trace.attempts[0].model == "large"
        start, trace = await engine.stream(Request.chat("hi", stream=True))
        chunks = [start.first] + [c async for c in start.rest]
        assert start.model == "small" and len(chunks) == 3
        assert trace.outcome == "ok"
    finally:
        await engine.aclose()


async def test_system_prompt_plugin_changes_what_is_sent(
    upstreams: tuple[FakeUpstream, ...],
) -> None:
    decisions = [
        {
            "name": "all",
            "models": ["small"],
            "plugins": [{"type": "system_prompt", "text": "Be terse."}],
        }
    ]
    engine = engine_for(upstreams, decisions=decisions)
    try:
        await engine.complete(Request.chat("hi"))
    finally:
        await engine.aclose()
    sent = upstreams[0].requests[-1]["messages"]
    assert sent[0] == {"role": "system", "content": "Be terse."}


async def test_block_plugin_refuses_explicitly(upstreams: tuple[FakeUpstream, ...]) -> None:
    decisions = [
        {"name": "no-math", "when": "math", "models": ["small"], "plugins": [{"type": "block"}]},
        {"name": "rest", "models": ["small"]},
    ]
    engine = engine_for(upstreams, decisions=decisions)
    with pytest.raises(Blocked):
        await engine.complete(Request.chat("prove it"))
    assert not upstreams[0].requests


def test_no_matching_decision_is_a_routing_error(upstreams: tuple[FakeUpstream, ...]) -> None:
    engine = engine_for(upstreams, decisions=[{"name": "m", "when": "math", "models": ["small"]}])
    with pytest.raises(RoutingError):
        engine.route(Request.chat("hello"))


def test_route_computes_every_signal_for_explanations(upstreams: tuple[FakeUpstream, ...]) -> None:
    signals = {
        "math": {"type": "keyword", "any": ["prove"]},
        "size": {"type": "tokens"},
    }
    engine = engine_for(upstreams, signals=signals)
    trace = engine.route(Request.chat("x" * 40))
    assert trace.signals == {"math": False, "size": 10}
