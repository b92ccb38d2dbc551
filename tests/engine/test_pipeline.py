"""The request pipeline's phases, in-process: signals -> decision -> request plugins ->
selection -> plan -> response plugins (guard refuse and reroute, answers from a plugin,
stream taps, unknown signals)."""

from __future__ import annotations

import time
from typing import Any, ClassVar

import pytest
from fakes import FakeUpstream, gateway_config

from polyroute import Engine, Request, parse_config
from polyroute.errors import Blocked, ConfigError, RoutingError
from polyroute.plugins import PLUGINS
from polyroute.plugins.base import BasePlugin, ChunkTap, Context, PluginOptions, Respond, Verdict
from polyroute.signals import SIGNALS
from polyroute.signals.base import BaseSignal
from polyroute.types import JSON, SignalValue
from polyroute.types import Request as Req


class AnswerAll(BasePlugin):
    """Answers every request itself (as a cache hit would)."""

    async def on_request(self, ctx: Context) -> Verdict:
        body = {
            "id": "cached",
            "object": "chat.completion",
            "created": 1,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "from the plugin"},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 1, "completion_tokens": 3, "total_tokens": 4},
        }
        return Respond(body, model="cache")


class UpperOptions(PluginOptions):
    tag: str = "up"


class _UpperTap:
    def __init__(self, log: list[str]) -> None:
        self.log = log

    def chunk(self, chunk: JSON) -> None:
        for choice in chunk.get("choices") or ():
            delta = choice.get("delta") or {}
            if isinstance(delta.get("content"), str):
                delta["content"] = delta["content"].upper()

    async def end(self) -> list[JSON]:
        self.log.append("end")
        return [
            {
                "object": "chat.completion.chunk",
                "choices": [{"index": 0, "delta": {"content": "!"}}],
            }
        ]


class Upper(BasePlugin):
    """Upper-cases answers; its stream tap adds a final "!" chunk."""

    Options = UpperOptions
    ends: ClassVar[list[str]] = []

    async def on_answer(self, ctx: Context, answer: JSON) -> JSON:
        for choice in answer["choices"]:
            choice["message"]["content"] = choice["message"]["content"].upper()
        return answer

    def on_stream(self, ctx: Context) -> ChunkTap | None:
        return _UpperTap(self.ends)


class Slow(BaseSignal):
    """A signal that runs an encoder (blocking) and takes 0.5 s."""

    blocking = True

    def compute(self, request: Req) -> SignalValue:
        time.sleep(0.5)
        return 0.9


PLUGINS.register("answer_all", f"{__name__}:AnswerAll")
PLUGINS.register("upper", f"{__name__}:Upper")
SIGNALS.register("slow_test", f"{__name__}:Slow")


def engine_for(upstreams: tuple[FakeUpstream, ...], **changes: Any) -> Engine:
    config = gateway_config(upstreams[0].base_url, upstreams[1].base_url)
    config.update(changes)
    return Engine(parse_config(config))


async def test_guard_refuses_with_its_status_and_says_which_signal_fired(
    upstreams: tuple[FakeUpstream, ...],
) -> None:
    guard = {"type": "guard", "signal": "math", "status": 451, "message": "no maths here"}
    engine = engine_for(upstreams, plugins=[guard])
    trace_seen = None
    try:
        from polyroute.types import Trace

        trace_seen = Trace("t")
        with pytest.raises(Blocked) as info:
            await engine.complete(Request.chat("prove it"), trace_seen)
    finally:
        await engine.aclose()
    assert info.value.status == 451 and info.value.message == "no maths here"
    assert trace_seen.events == [
        {"plugin": "guard", "action": "refused", "signals": {"math": True}}
    ]
    assert trace_seen.outcome == "blocked"
    assert not upstreams[0].requests and not upstreams[1].requests


async def test_guard_reroutes_to_another_decision_or_a_model(
    upstreams: tuple[FakeUpstream, ...],
) -> None:
    to_decision = {"type": "guard", "signal": "math", "action": "reroute", "to": "default"}
    engine = engine_for(upstreams, plugins=[to_decision])
    try:
        answer, trace = await engine.complete(Request.chat("prove it"))
    finally:
        await engine.aclose()
    # without the guard "prove" goes to hard-math (large first); rerouted: default, cheapest
    assert trace.decision == "default" and answer["model"] == "small"
    assert trace.events[0]["action"] == "rerouted" and trace.events[0]["to"] == "default"

    to_model = {"type": "guard", "signal": "math", "action": "reroute", "to": "large"}
    engine = engine_for(upstreams, plugins=[to_model])
    try:
        answer, trace = await engine.complete(Request.chat("prove it"))
        untouched, _ = await engine.complete(Request.chat("hello"))
    finally:
        await engine.aclose()
    assert trace.decision == "direct:large" and answer["model"] == "large"
    assert untouched["model"] == "small"


def test_reroute_targets_and_guard_options_are_checked_at_load(
    upstreams: tuple[FakeUpstream, ...],
) -> None:
    bad = {"type": "guard", "signal": "math", "action": "reroute", "to": "nowhere"}
    with pytest.raises(ConfigError, match=r"plugins\[0\]\.to: 'nowhere' is neither a decision"):
        engine_for(upstreams, plugins=[bad])
    with pytest.raises(ConfigError, match=r"plugins\[0\]\.signal: unknown signal 'maths'"):
        engine_for(upstreams, plugins=[{"type": "guard", "signal": "maths"}])
    with pytest.raises(ConfigError, match=r"plugins\[0\]: .*reroute needs to"):
        engine_for(upstreams, plugins=[{"type": "guard", "signal": "math", "action": "reroute"}])
    with pytest.raises(ConfigError, match=r"plugins\[0\]\.colour: Extra inputs"):
        engine_for(upstreams, plugins=[{"type": "guard", "signal": "math", "colour": "red"}])


async def test_a_reroute_loop_is_refused_not_followed_forever(
    upstreams: tuple[FakeUpstream, ...],
) -> None:
    def hop(to: str) -> dict[str, Any]:
        return {"type": "guard", "when": True, "action": "reroute", "to": to}

    decisions = [
        {"name": "a", "models": ["small"], "plugins": [hop("b")]},
        {"name": "b", "models": ["small"], "plugins": [hop("a")]},
    ]
    engine = engine_for(upstreams, decisions=decisions)
    try:
        with pytest.raises(RoutingError, match="rerouted more than"):
            await engine.complete(Request.chat("hi"))
    finally:
        await engine.aclose()
    assert not upstreams[0].requests


async def test_action_block_is_a_refusal_without_models(
    upstreams: tuple[FakeUpstream, ...],
) -> None:
    decisions = [
        {"name": "no-math", "when": "math", "action": "block"},
        {"name": "rest", "models": ["small"]},
    ]
    engine = engine_for(upstreams, decisions=decisions)
    try:
        with pytest.raises(Blocked):
            await engine.complete(Request.chat("prove it"))
        answer, _ = await engine.complete(Request.chat("hi"))
    finally:
        await engine.aclose()
    assert answer["model"] == "small" and len(upstreams[0].requests) == 1
    with pytest.raises(ConfigError, match="needs models"):
        engine_for(upstreams, decisions=[{"name": "x", "when": True}])


async def test_a_plugin_answer_costs_no_selection_and_no_upstream_and_replays_as_a_stream(
    upstreams: tuple[FakeUpstream, ...],
) -> None:
    engine = engine_for(upstreams, plugins=[{"type": "answer_all"}])
    for decision in engine.profiles["auto"]:
        object.__setattr__(decision, "selector", None)  # selection must not run
    try:
        answer, trace = await engine.complete(Request.chat("hi"))
        start, _ = await engine.stream(Request.chat("hi", stream=True))
        chunks = [start.first] + [c async for c in start.rest]
    finally:
        await engine.aclose()
    assert (
        answer["model"] == "cache"
        and answer["choices"][0]["message"]["content"] == "from the plugin"
    )
    assert trace.outcome == "answered_by_plugin" and trace.model == "cache" and not trace.candidates
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks)
    assert text == "from the plugin" and start.model == "cache"
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert (
        chunks[-1]["choices"][0]["finish_reason"] == "stop"
        and chunks[-1]["usage"]["total_tokens"] == 4
    )
    assert not upstreams[0].requests and not upstreams[1].requests


async def test_response_plugins_see_whole_answers_and_every_chunk(
    upstreams: tuple[FakeUpstream, ...],
) -> None:
    Upper.ends.clear()
    engine = engine_for(upstreams, plugins=[{"type": "upper"}])
    try:
        answer, _ = await engine.complete(Request.chat("hi"))
        start, _ = await engine.stream(Request.chat("hi", stream=True))
        chunks = [start.first] + [c async for c in start.rest]
    finally:
        await engine.aclose()
    content = answer["choices"][0]["message"]["content"]
    assert content == content.upper() and content
    streamed = "".join(
        c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"]
    )
    assert streamed.endswith("!") and streamed == streamed.upper() and Upper.ends == ["end"]


async def test_global_plugins_run_before_the_decisions_own(
    upstreams: tuple[FakeUpstream, ...],
) -> None:
    decisions = [
        {
            "name": "all",
            "models": ["small"],
            "plugins": [{"type": "system_prompt", "text": "second", "mode": "prepend"}],
        }
    ]
    engine = engine_for(
        upstreams, decisions=decisions, plugins=[{"type": "system_prompt", "text": "first"}]
    )
    try:
        await engine.complete(Request.chat("hi"))
    finally:
        await engine.aclose()
    sent = upstreams[0].requests[-1]["messages"]
    assert [m["content"] for m in sent] == ["second", "first", "hi"]


@pytest.mark.parametrize(("unknown", "expected"), [(False, "default"), (True, "slow-path")])
async def test_a_signal_past_its_timeout_is_unknown_and_rules_say_what_that_means(
    upstreams: tuple[FakeUpstream, ...], unknown: bool, expected: str
) -> None:
    decisions = [
        {
            "name": "slow-path",
            "when": {"signal": "slow", "ge": 0.5, "unknown": unknown},
            "models": ["large"],
        },
        {"name": "default", "models": ["small"]},
    ]
    engine = engine_for(
        upstreams,
        signals={"slow": {"type": "slow_test"}},
        decisions=decisions,
        server={"signal_timeout_s": 0.05},
    )
    try:
        started = time.perf_counter()
        _, trace = await engine.complete(Request.chat("hi"))
        waited = time.perf_counter() - started
    finally:
        await engine.aclose()
    assert trace.decision == expected and trace.signals["slow"] is None
    assert waited < 0.4  # the request did not wait for the slow signal


def test_the_dry_run_previews_guards(upstreams: tuple[FakeUpstream, ...]) -> None:
    """``route`` (the CLI's ``route --input``, ``/v1/route``) shows what guards would do."""
    decisions = [
        {
            "name": "main",
            "models": ["small"],
            "plugins": [{"type": "guard", "signal": "math", "action": "reroute", "to": "big"}],
        },
        {"name": "big", "when": False, "models": ["large"]},
    ]
    refuse_size = {"type": "guard", "when": {"signal": "size", "gt": 50}}
    engine = engine_for(
        upstreams,
        decisions=decisions,
        plugins=[refuse_size],
        signals={"math": {"type": "keyword", "any": ["prove"]}, "size": {"type": "tokens"}},
    )
    rerouted = engine.route(Request.chat("prove it"))
    refused = engine.route(Request.chat("x" * 400))
    plain = engine.route(Request.chat("hello"))
    assert rerouted.decision == "big" and rerouted.candidates == ["large"]
    assert rerouted.events[0]["to"] == "big" and rerouted.outcome == "pending"
    assert refused.outcome == "refused:blocked" and refused.candidates == []
    assert plain.decision == "main" and plain.candidates == ["small"] and not plain.events
    assert not upstreams[0].requests and not upstreams[1].requests
