"""Cost from usage: every request's cost from the upstream's token counts, plain and
streamed, falling back to the estimate (and saying so) when none is reported."""

from __future__ import annotations

import pytest
from fakes import Behaviour, FakeUpstream, gateway_config

from polyroute import Engine, Request, parse_config
from polyroute.types import Trace

# gateway_config prices: small 0.1 / 0.1 USD per million tokens, large 3 / 15
LARGE_IN, LARGE_OUT = 3.0e-6, 15.0e-6


def engine_for(upstreams: tuple[FakeUpstream, ...]) -> Engine:
    return Engine(parse_config(gateway_config(upstreams[0].base_url, upstreams[1].base_url)))


async def test_a_plain_answer_costs_its_reported_tokens(
    upstreams: tuple[FakeUpstream, ...],
) -> None:
    engine = engine_for(upstreams)
    try:
        _, trace = await engine.complete(Request.chat("prove it", max_tokens=2000))
    finally:
        await engine.aclose()
    # the fake reports 3 prompt and 4 completion tokens
    assert (trace.input_tokens, trace.output_tokens, trace.cost_source) == (3, 4, "usage")
    assert trace.cost_usd == pytest.approx(3 * LARGE_IN + 4 * LARGE_OUT, rel=0.01)
    assert trace.estimated_cost_usd > 100 * trace.cost_usd  # the old guess: max_tokens
    logged = trace.as_dict()
    assert logged["usage"] == {"input_tokens": 3, "output_tokens": 4}
    assert logged["cost_source"] == "usage"


@pytest.mark.parametrize("client_asked", [False, True])
async def test_a_stream_asks_for_usage_and_strips_it_unless_the_client_asked(
    upstreams: tuple[FakeUpstream, ...], client_asked: bool
) -> None:
    engine = engine_for(upstreams)
    extra = {"stream_options": {"include_usage": True}} if client_asked else {}
    try:
        start, trace = await engine.stream(Request.chat("prove it", stream=True, **extra))
        chunks = [start.first] + [c async for c in start.rest]
    finally:
        await engine.aclose()
    sent = upstreams[1].requests[-1]
    assert sent["stream_options"] == {"include_usage": True}
    assert any("usage" in c for c in chunks) == client_asked
    assert all(c for c in chunks)  # no empty chunk reaches the client
    assert (trace.input_tokens, trace.output_tokens, trace.cost_source) == (11, 3, "usage")
    assert trace.cost_usd == pytest.approx(11 * LARGE_IN + 3 * LARGE_OUT, rel=0.01)


async def test_no_usage_falls_back_to_the_estimate_and_says_so(
    upstreams: tuple[FakeUpstream, ...],
) -> None:
    upstreams[0].behaviour = Behaviour(mode="echo")  # the echo answer reports no usage
    engine = engine_for(upstreams)
    try:
        _, trace = await engine.complete(Request.chat("hello"), Trace("t"))
    finally:
        await engine.aclose()
    assert trace.cost_source == "estimate" and trace.input_tokens is None
    assert trace.cost_usd == trace.estimated_cost_usd > 0
