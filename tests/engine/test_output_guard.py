"""``output_guard``: an answer that trips a rule is withheld (whole) or ends in an error
event (streamed); a clean one passes untouched."""

from __future__ import annotations

import pytest
from fakes import Behaviour, FakeUpstream, gateway_config

from polyroute import Engine, Request, parse_config
from polyroute.errors import Blocked, ConfigError
from polyroute.types import Trace


def engine_for(upstreams: tuple[FakeUpstream, ...], **guard: object) -> Engine:
    config = gateway_config(upstreams[0].base_url, upstreams[1].base_url)
    config["signals"] = {**config["signals"], "pii": {"type": "pii"}}
    config["plugins"] = [{"type": "output_guard", "signal": "pii", **guard}]
    return Engine(parse_config(config))


async def test_an_answer_with_personal_data_is_withheld(
    upstreams: tuple[FakeUpstream, ...],
) -> None:
    upstreams[0].behaviour = Behaviour(mode="echo")
    engine = engine_for(upstreams, status=451)
    trace = Trace("t")
    try:
        with pytest.raises(Blocked) as info:
            await engine.complete(Request.chat("write to jane.doe@example.com"), trace)
        clean, _ = await engine.complete(Request.chat("write a haiku"))
    finally:
        await engine.aclose()
    assert info.value.status == 451 and info.value.code == "output_blocked"
    assert trace.outcome == "output_blocked"
    assert trace.events[-1]["signals"] == {"pii": ["EMAIL_ADDRESS"]}
    assert clean["choices"][0]["message"]["content"] == "write a haiku"


async def test_a_stream_that_trips_the_rule_ends_with_an_error_event(
    upstreams: tuple[FakeUpstream, ...],
) -> None:
    upstreams[0].behaviour = Behaviour(mode="echo", chunks=5)
    engine = engine_for(upstreams)
    try:
        start, trace = await engine.stream(Request.chat("mail jane.doe@example.com", stream=True))
        chunks = [start.first] + [c async for c in start.rest]
        clean_start, clean_trace = await engine.stream(Request.chat("a haiku", stream=True))
        clean = [clean_start.first] + [c async for c in clean_start.rest]
    finally:
        await engine.aclose()
    assert chunks[-1]["error"]["code"] == "output_blocked" and trace.outcome == "output_blocked"
    assert "error" not in clean[-1] and clean_trace.outcome == "ok"


def test_its_rule_is_checked_at_load(upstreams: tuple[FakeUpstream, ...]) -> None:
    config = gateway_config(upstreams[0].base_url, upstreams[1].base_url)
    config["plugins"] = [{"type": "output_guard", "signal": "nope"}]
    with pytest.raises(ConfigError, match=r"plugins\[0\]\.signal: unknown signal 'nope'"):
        Engine(parse_config(config))
