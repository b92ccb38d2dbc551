"""Integers beyond 64 bits pass through the gateway unchanged.

orjson reads ``123456789012345678901`` as ``1.2345678901234568e+20`` and writes no
integer beyond 64 bits; the gateway parses such bodies again with the stdlib and
serialises them with ``polyroute.jsonio.dumps_body``.  Checked on ``parse_body`` itself
and through a real ``polyroute serve`` in front of fake upstreams that record the exact
bytes they receive, plain and streaming, OpenAI and Anthropic protocol.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from aiohttp import web
from fakes import FakeAnthropic, FakeUpstream, running
from procs import Proc, start_gateway

from polyroute.errors import InvalidRequest
from polyroute.server.validate import MAX_DEPTH, _parse_exact, parse_body

LIMIT = 1 << 20
SEED = b'"seed":123456789012345678901'
NEGATIVE = b'"offset":-98765432109876543210'
BIG_FIELDS = SEED + b"," + NEGATIVE


def chat(*fields: bytes, model: bytes = b"auto") -> bytes:
    head = b'{"model":"' + model + b'","messages":[{"role":"user","content":"hi"}]'
    return head + b"".join(b"," + f for f in fields) + b"}"


# ------------------------------------------------------------------ parse_body


@pytest.mark.parametrize(
    "value",
    [
        123456789012345678901,
        -98765432109876543210,
        2**64,  # the first one orjson reads as a float
        -(2**63) - 1,  # 19 digits
        10**300,
    ],
)
def test_parse_body_keeps_big_integers_exact(value: int) -> None:
    body = parse_body(chat(b'"seed":%d' % value, b'"tools":[{"max":%d}]' % value), LIMIT)
    assert body["seed"] == value and type(body["seed"]) is int
    assert body["tools"] == [{"max": value}]


def test_long_digit_runs_elsewhere_change_nothing() -> None:
    raw = chat(b'"user":"12345678901234567890123"', b'"t":0.1234567890123456789', b'"n":3')
    assert parse_body(raw, LIMIT) == json.loads(raw)


def test_the_depth_limit_holds_on_the_exact_path() -> None:
    deep = b"[" * (MAX_DEPTH + 1) + b"]" * (MAX_DEPTH + 1)
    with pytest.raises(InvalidRequest, match="nested too deeply"):
        parse_body(chat(SEED, b'"x":' + deep), LIMIT)


@pytest.mark.parametrize(
    "number", [b"1e400", b"-1e400", b"NaN", b"Infinity", b"-Infinity", b"1" * 400]
)
def test_numbers_json_cannot_hold_are_refused_on_the_exact_path(number: bytes) -> None:
    with pytest.raises(InvalidRequest, match="not valid JSON"):
        parse_body(chat(SEED, b'"x":' + number), LIMIT)


@pytest.mark.parametrize("constant", [b"NaN", b"Infinity", b"-Infinity"])
def test_the_exact_parser_refuses_non_finite_literals_itself(constant: bytes) -> None:
    """orjson refuses these first; the stdlib parser, which accepts them, must too."""
    with pytest.raises(InvalidRequest, match="not a JSON value"):
        _parse_exact(b'{"seed":123456789012345678901,"x":' + constant + b"}")


# ------------------------------------------------------------------ through the gateway


@dataclass
class RecordingOpenAI(FakeUpstream):
    raw: list[bytes] = field(default_factory=list)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.raw.append(await request.read())
        return await super()._handle(request)


@dataclass
class RecordingAnthropic(FakeAnthropic):
    raw: list[bytes] = field(default_factory=list)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.raw.append(await request.read())
        return await super()._handle(request)


@dataclass
class Served:
    proc: Proc
    openai: RecordingOpenAI
    anthropic: RecordingAnthropic

    def post(self, body: bytes) -> tuple[int, bytes]:
        request = urllib.request.Request(
            f"{self.proc.url}/v1/chat/completions",
            data=body,
            headers={"content-type": "application/json"},
        )
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(request, timeout=30) as resp:
            return int(resp.status), resp.read()


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    logs: Path = tmp_path_factory.mktemp("big-integers")
    with running(RecordingOpenAI("up"), RecordingAnthropic("claude")) as (up, claude):
        assert isinstance(up, RecordingOpenAI) and isinstance(claude, RecordingAnthropic)
        config = {
            "models": {
                "up": {"base_url": up.base_url},
                "claude": {"provider": "anthropic", "base_url": f"http://127.0.0.1:{claude.port}"},
            },
            "decisions": [{"name": "default", "models": ["up"]}],
            "server": {"retries": 0},
        }
        proc = start_gateway("gateway", config, logs)
        try:
            yield Served(proc, up, claude)
        finally:
            proc.stop()


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_big_integers_reach_the_upstream_byte_exact(served: Served, stream: bool) -> None:
    fields = [BIG_FIELDS, b'"stream":true'] if stream else [BIG_FIELDS]
    status, answer = served.post(chat(*fields))
    assert status == 200, answer[:500]
    assert (b"data: [DONE]" in answer) is stream
    sent = served.openai.raw[-1]
    assert BIG_FIELDS in sent, sent
    assert b"e+" not in sent, sent


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_big_integers_in_a_tool_schema_reach_an_anthropic_upstream(
    served: Served, stream: bool
) -> None:
    schema = b'{"type":"object","properties":{"n":{"type":"integer","maximum":%s}}}'
    tool = b'{"type":"function","function":{"name":"f","parameters":%s}}' % (
        schema % b"123456789012345678901"
    )
    fields = [b'"tools":[' + tool + b"]"] + ([b'"stream":true'] if stream else [])
    status, answer = served.post(chat(*fields, model=b"claude"))
    assert status == 200, answer[:500]
    sent = served.anthropic.raw[-1]
    assert b'"maximum":123456789012345678901' in sent, sent
