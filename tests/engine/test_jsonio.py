"""Request bodies are serialised for an upstream with integers of any size exact."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from polyroute.backends.openai import OpenAIProvider
from polyroute.jsonio import dumps_body
from polyroute.types import Request

BIG = 123456789012345678901
NEGATIVE = -98765432109876543210


def test_big_integers_are_written_exactly_and_compactly() -> None:
    body = {"seed": BIG, "nested": [{"n": NEGATIVE}], "text": "héllo ✓", "t": 0.5}
    expected = (
        '{"seed":123456789012345678901,"nested":[{"n":-98765432109876543210}],'
        '"text":"héllo ✓","t":0.5}'
    )
    assert dumps_body(body) == expected.encode()


@pytest.mark.parametrize("value", [2**64 - 1, -(2**63), 2**64, -(2**63) - 1, 10**300])
def test_the_64_bit_boundary(value: int) -> None:
    assert dumps_body({"v": value}) == b'{"v":%d}' % value


def test_ordinary_bodies_are_orjson_bytes() -> None:
    body: dict[str, Any] = {"model": "m", "messages": [{"role": "user", "content": "é"}], "n": 1}
    assert dumps_body(body) == orjson.dumps(body)


def test_other_refusals_are_not_hidden() -> None:
    with pytest.raises(TypeError):  # orjson.JSONEncodeError: not an integer problem
        dumps_body({"seed": BIG, "x": object()})
    with pytest.raises(ValueError):  # never the invalid JSON `Infinity`
        dumps_body({"seed": BIG, "x": float("inf")})


@pytest.mark.parametrize("stream", [False, True])
def test_openai_payload_keeps_big_integers(stream: bool) -> None:
    request = Request({"model": "auto", "messages": [], "seed": BIG, "logit_bias": {"1": NEGATIVE}})
    payload = OpenAIProvider._payload(request, "upstream-model", stream)
    assert b'"seed":123456789012345678901' in payload
    assert b'"logit_bias":{"1":-98765432109876543210}' in payload
    assert b'"model":"upstream-model"' in payload
    assert (b'"stream":true' in payload) is stream
