"""Routing work is bounded for huge prompts and runs off the event loop for big bodies.

* Text signals read at most ``server.signal_text_max_chars`` characters: the first and
  the last half of the prompt, joined by a newline.  A keyword at the start or at the
  end of a huge prompt still matches; one in the middle, beyond the bound, does not
  (documented in docs/config.md).  Ordinary prompts are read whole, as before.
* ``Engine.aplan`` routes a request over ``server.route_in_thread_bytes`` (decide and
  order) in a worker thread; smaller ones stay inline on the event loop.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import threading
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml
from fakes import gateway_config
from starlette.testclient import TestClient

from polyroute import Engine, Request, Trace, parse_config
from polyroute.backends.backend import Backend
from polyroute.cli import main
from polyroute.config import ServerConfig
from polyroute.errors import ModelNotFound, RoutingError
from polyroute.server import create_app
from polyroute.signals import BaseSignal
from polyroute.signals.base import TEXT_MAX_CHARS
from polyroute.types import SignalValue, bound_text

UNUSED = "http://127.0.0.1:9/v1"  # no test here calls a model
FILLER = "lorem ipsum dolor sit amet "


def huge(start: str, middle: str, end: str, chars: int) -> str:
    half = FILLER * (chars // (2 * len(FILLER)))
    return f"{start} {half} {middle} {half} {end}"


def bounds_config(**server: Any) -> dict[str, Any]:
    config = gateway_config(UNUSED, UNUSED, **server)
    config["signals"] = {
        "first": {"type": "keyword", "any": ["zebra"]},
        "middle": {"type": "keyword", "any": ["narwhal"]},
        "last": {"type": "keyword", "any": ["quokka"]},
        "all_text": {"type": "keyword", "any": ["quokka"], "field": "text"},
        "tokens": {"type": "tokens"},
    }
    config["decisions"] = [
        {"name": "middle", "when": "middle", "models": ["large"]},
        {"name": "default", "when": True, "models": ["small"]},
    ]
    return config


def engine_with(**server: Any) -> Engine:
    return Engine(parse_config(bounds_config(**server)))


# ------------------------------------------------------------------ bounded text


def test_bound_text_keeps_first_and_last_halves() -> None:
    text = "a" * 600 + "b" * 1000 + "c" * 600
    cut = bound_text(text, 1024)
    assert len(cut) == 1024
    assert cut == "a" * 512 + "\n" + "c" * 511
    short = "prove the theorem"
    assert bound_text(short, 1024) is short  # ordinary prompts: the very same string


def test_signal_default_bound_is_the_config_default() -> None:
    assert ServerConfig().signal_text_max_chars == TEXT_MAX_CHARS


def test_huge_prompt_start_and_end_count_the_middle_does_not() -> None:
    engine = engine_with()
    prompt = huge("zebra: summarise this", "narwhal", "what about the quokka?", 4_000_000)
    trace = engine.route(Request.chat(prompt))
    assert trace.signals["first"] is True
    assert trace.signals["last"] is True
    assert trace.signals["all_text"] is True
    assert trace.signals["middle"] is False  # beyond the bound: not read
    assert trace.decision == "default"
    assert trace.signals["tokens"] == (len(prompt) + 3) // 4  # counts the whole prompt


def test_the_bound_is_the_server_setting() -> None:
    prompt = huge("zebra", "narwhal", "quokka", 10_000)
    small = engine_with(signal_text_max_chars=1024).route(Request.chat(prompt))
    assert [small.signals[k] for k in ("first", "middle", "last")] == [True, False, True]
    whole = engine_with().route(Request.chat(prompt))  # 10 k chars: under the default
    assert whole.signals["middle"] is True and whole.decision == "middle"


def test_ordinary_prompts_are_read_whole() -> None:
    request = Request.chat("zebra narwhal quokka")
    assert request.bounded("prompt", 1024) is request.prompt
    assert request.bounded("text", 1024) is request.text
    trace = engine_with(signal_text_max_chars=1024).route(request)
    assert trace.signals == {
        "first": True,
        "middle": True,
        "last": True,
        "all_text": True,
        "tokens": 5,
    }
    assert trace.decision == "middle"


def test_the_bounded_text_is_cut_once_per_request() -> None:
    request = Request.chat(huge("zebra", "narwhal", "quokka", 100_000))
    first = request.bounded("prompt", 2048)
    assert len(first) == 2048
    assert request.bounded("prompt", 2048) is first  # shared by every signal


class Counting(BaseSignal):
    """Counts its computations; records the thread it ran on and the request's raw size."""

    def setup(self) -> None:
        self.calls = 0
        self.threads: list[int] = []
        self.sizes: list[int] = []
        self.on_loop: list[bool] = []

    def compute(self, request: Request) -> SignalValue:
        self.calls += 1
        self.threads.append(threading.get_ident())
        self.sizes.append(request.raw_bytes)
        try:
            asyncio.get_running_loop()
            self.on_loop.append(True)
        except RuntimeError:
            self.on_loop.append(False)
        return False


def test_a_signal_is_computed_once_per_request_whatever_the_rules() -> None:
    config = gateway_config(UNUSED, UNUSED)
    config["decisions"] = [
        *({"name": f"r{i}", "when": "math", "models": ["large"]} for i in range(50)),
        {"name": "default", "when": True, "models": ["small"]},
    ]
    engine = Engine(parse_config(config))
    counter = Counting("math", {})
    engine.signals["math"] = counter
    assert engine.route(Request.chat("hi")).decision == "default"
    assert counter.calls == 1  # 50 rules read it; the dry run's full signal set reuses it
    engine.plan(Request.chat("hi"), Trace("t"))
    assert counter.calls == 2


# ------------------------------------------------------------------ off the event loop


class RecordingSelector:
    def __init__(self) -> None:
        self.threads: list[int] = []

    def order(self, candidates: Sequence[Backend], request: Request, trace: Trace) -> list[Backend]:
        self.threads.append(threading.get_ident())
        return list(candidates)


@pytest.fixture
async def recorded() -> AsyncIterator[tuple[Engine, Counting, RecordingSelector]]:
    engine = engine_with(route_in_thread_bytes=10_000)
    counter = Counting("middle", {})  # the signal the first rule reads
    engine.signals["middle"] = counter
    selector = RecordingSelector()
    engine.profiles["auto"] = [
        dataclasses.replace(d, selector=selector) for d in engine.profiles["auto"]
    ]
    yield engine, counter, selector
    await engine.aclose()


def chat_body(chars: int) -> dict[str, Any]:
    return Request.chat("x" * chars).body


async def test_aplan_routes_big_bodies_in_a_thread_and_small_ones_inline(
    recorded: tuple[Engine, Counting, RecordingSelector],
) -> None:
    engine, counter, selector = recorded
    loop_thread = threading.get_ident()
    cases = [
        (Request(chat_body(100), raw_bytes=200), False),
        (Request(chat_body(100), raw_bytes=10_000), False),  # at the limit: inline
        (Request(chat_body(100), raw_bytes=10_001), True),
        (Request(chat_body(100)), False),  # built in code: sized by its text
        (Request(chat_body(20_000)), True),
    ]
    for request, threaded in cases:
        trace = Trace("t")
        plan = await engine.aplan(request, trace)
        assert plan.decision.name == trace.decision == "default"
        assert trace.candidates == ["small"]
        assert trace.signals == {"middle": False}
        on_loop = [counter.threads[-1] == loop_thread, selector.threads[-1] == loop_thread]
        assert on_loop == [not threaded, not threaded], (request.size, on_loop)


async def test_routing_errors_from_the_thread_reach_the_caller(
    recorded: tuple[Engine, Counting, RecordingSelector],
) -> None:
    engine, counter, _ = recorded
    engine.profiles["strict"] = [d for d in engine.profiles["auto"] if d.name == "middle"]
    body = {**chat_body(100), "model": "strict"}
    with pytest.raises(RoutingError, match="no decision matched"):
        await engine.aplan(Request(body, raw_bytes=50_000), Trace("t"))
    assert counter.on_loop == [False]  # raised in the worker thread, re-raised here
    with pytest.raises(ModelNotFound, match="no-such-model"):
        await engine.aplan(
            Request({**body, "model": "no-such-model"}, raw_bytes=50_000), Trace("t")
        )


def test_the_gateway_sizes_requests_by_their_raw_body() -> None:
    engine = engine_with(route_in_thread_bytes=10_000)
    counter = Counting("middle", {})  # the signal the first rule reads
    engine.signals["middle"] = counter
    app = create_app(engine)
    big = orjson.dumps(chat_body(20_000))
    small = orjson.dumps(chat_body(100))
    with TestClient(app, raise_server_exceptions=False) as client:
        for body in (small, big):
            # no upstream listens there: routing happens, then the call fails (a 5xx)
            client.post("/v1/chat/completions", content=body)
    assert counter.sizes == [len(small), len(big)]
    assert counter.on_loop == [True, False]  # the big one was routed off the event loop
    assert counter.threads[0] != counter.threads[1]


def expect_bounded(trace: dict[str, Any]) -> None:
    signals = trace["signals"]
    assert [signals[k] for k in ("first", "middle", "last")] == [True, False, True]
    assert trace["decision"] == "default"


def test_the_route_endpoint_reads_the_same_bounded_text() -> None:
    prompt = huge("zebra", "narwhal", "quokka", 20_000)
    engine = engine_with(signal_text_max_chars=1024)
    expect_bounded(engine.route(Request.chat(prompt)).as_dict())
    with TestClient(create_app(engine), raise_server_exceptions=False) as client:
        route = client.post("/v1/route", json={"prompt": prompt})
    assert route.status_code == 200
    expect_bounded(route.json())


def test_the_route_command_reads_the_same_bounded_text(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "polyroute.yaml"
    path.write_text(yaml.safe_dump(bounds_config(signal_text_max_chars=1024)))
    prompt = huge("zebra", "narwhal", "quokka", 20_000)
    capsys.readouterr()
    assert main(["route", "--config", str(path), "--json", prompt]) == 0
    expect_bounded(json.loads(capsys.readouterr().out))
