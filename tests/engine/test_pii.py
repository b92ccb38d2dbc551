"""The ``pii`` signal: recognizers with near misses, the set value, ``contains`` rules,
load-time validation and the JSON of ``polyroute route --input``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from polyroute.cli import main
from polyroute.config import load_config
from polyroute.engine import Engine
from polyroute.errors import ConfigError
from polyroute.signals.pii import PiiSignal
from polyroute.signals.pii_recognizers import find, iban_ok, luhn_ok
from polyroute.types import Request, Trace


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("mail me at jane.doe+x@example.co.uk please", {"EMAIL_ADDRESS"}),
        ("my handle is @jane and a@b is not an address", set()),
        ("card 4111 1111 1111 1111 exp 12/27", {"CREDIT_CARD"}),
        ("card 4111-1111-1111-1111", {"CREDIT_CARD"}),
        ("order 4111111111111112 shipped", set()),  # 16 digits failing Luhn
        ("SSN 078-05-1120", {"US_SSN"}),
        ("code 000-12-3456 or 666-12-3456", {"PHONE_NUMBER"}),  # never-issued SSNs
        ("IBAN GB82 WEST 1234 5698 7654 32 thanks", {"IBAN_CODE"}),
        ("send to DE89370400440532013000 today", {"IBAN_CODE"}),
        ("send to DE89370400440532013001 today", set()),  # bad mod-97 checksum
        ("ping 192.168.1.20 now", {"IP_ADDRESS"}),
        ("ipv6 2001:db8::8a2e:370:7334 is up", {"IP_ADDRESS"}),
        ("upgrade to v1.2.3.4 or version 10.0.0.1", set()),  # versions
        ("build 1.2.3.4.5 and 300.1.1.1", set()),  # five parts; octet > 255
        ("call me at +1-984-182-0190", {"PHONE_NUMBER"}),
        ("Phone: 467 3395", {"PHONE_NUMBER"}),
        ("I live at 370 3911 Fourth Avenue", set()),  # two short groups, no phone word
        ("the meeting is on 2024-01-31 10:30", set()),  # a date is not a phone
    ],
)
def test_recognizers(text: str, expected: set[str]) -> None:
    assert find(text) == expected


def test_checksums() -> None:
    assert luhn_ok("4111111111111111") and not luhn_ok("4111111111111112")
    assert iban_ok("GB82WEST12345698765432") and not iban_ok("GB82WEST12345698765433")


def test_signal_value_is_a_set_of_configured_entities_over_user_text() -> None:
    request = Request(
        {
            "messages": [
                {"role": "system", "content": "admin@corp.example"},
                {"role": "user", "content": "my card is 4111 1111 1111 1111"},
                {"role": "assistant", "content": "ok"},
                {"role": "user", "content": "and write to me at a@b.example"},
            ]
        }
    )
    assert PiiSignal("p", {}).compute(request) == frozenset({"CREDIT_CARD", "EMAIL_ADDRESS"})
    assert PiiSignal("p", {"entities": ["EMAIL_ADDRESS"]}).compute(request) == {"EMAIL_ADDRESS"}
    assert PiiSignal("p", {"scope": "last_user"}).compute(request) == {"EMAIL_ADDRESS"}
    assert PiiSignal("p", {"scope": "all", "entities": ["EMAIL_ADDRESS"]}).compute(request) == {
        "EMAIL_ADDRESS"
    }
    assert PiiSignal("p", {}).compute(Request.chat("hello there")) == frozenset()


def test_a_failing_scan_is_unknown(monkeypatch: pytest.MonkeyPatch) -> None:
    import polyroute.signals.pii as module

    def boom(*_: Any) -> frozenset[str]:
        raise RuntimeError("boom")

    monkeypatch.setattr(module, "span_finder", lambda _: boom)
    assert PiiSignal("p", {}).compute(Request.chat("4111 1111 1111 1111")) is None


def test_unknown_entity_option_names_the_field() -> None:
    with pytest.raises(ConfigError, match=r"signals\.p\.entities: .*unknown entity \['ZIP_CODE'\]"):
        PiiSignal("p", {"entities": ["ZIP_CODE"]}, "signals.p")


CONFIG = """
models:
  local: {base_url: "http://127.0.0.1:9/v1"}
  cloud: {base_url: "http://127.0.0.1:9/v1"}
signals:
  pii: {type: pii}
  ids: {type: pii, entities: [US_SSN, IBAN_CODE]}
  math: {type: keyword, any: [prove]}
decisions:
  - {name: cards, priority: 30, when: {signal: pii, contains: CREDIT_CARD}, models: [local]}
  - {name: ids, priority: 20, when: {signal: ids, contains_any: [US_SSN, IBAN_CODE]},
     models: [local]}
  - {name: any-pii, priority: 10, when: pii, models: [local]}
  - {name: default, when: true, models: [cloud]}
"""


@pytest.fixture
def config_path(tmp_path: Path) -> Path:
    path = tmp_path / "polyroute.yaml"
    path.write_text(CONFIG)
    return path


@pytest.mark.parametrize(
    ("prompt", "decision", "pii"),
    [
        ("charge 4111 1111 1111 1111", "cards", ["CREDIT_CARD"]),
        ("my SSN is 078-05-1120", "ids", ["US_SSN"]),
        ("reach me at jo@example.com", "any-pii", ["EMAIL_ADDRESS"]),
        ("order 4111111111111112 please", "default", []),
        ("what is the capital of France", "default", []),
    ],
)
def test_rules_route_on_the_set(
    config_path: Path, prompt: str, decision: str, pii: list[str]
) -> None:
    trace = Engine(load_config(config_path)).route(Request.chat(prompt))
    assert trace.decision == decision
    assert trace.as_dict()["signals"]["pii"] == pii
    json.dumps(trace.as_dict())  # serialisable


def test_trace_writes_sets_as_sorted_lists() -> None:
    trace = Trace("t", signals={"pii": frozenset({"US_SSN", "CREDIT_CARD"}), "n": 3})
    assert trace.as_dict()["signals"] == {"pii": ["CREDIT_CARD", "US_SSN"], "n": 3}


@pytest.mark.parametrize(
    ("when", "message"),
    [
        ("{signal: math, contains: CREDIT_CARD}",
         r"decisions\[0\]\.when\.contains: signal 'math' is not set-valued"),
        ("{signal: pii, contains: PERSON}",
         r"decisions\[0\]\.when\.contains: unknown \['PERSON'\] for signal 'pii'"),
        ("{signal: ids, contains_any: [US_SSN, EMAIL_ADDRESS]}",
         r"when\.contains_any: unknown \['EMAIL_ADDRESS'\]"),
        ("{signal: pii, contains_any: CREDIT_CARD}",
         r"when\.contains_any: expected a list of names"),
        ("{signal: pii, eq: CREDIT_CARD}", r"when\.eq: signal 'pii' is a set"),
    ],
)  # fmt: skip
def test_bad_contains_is_a_load_error_naming_file_and_field(
    tmp_path: Path, when: str, message: str
) -> None:
    path = tmp_path / "bad.yaml"
    text = CONFIG.replace(
        "{signal: pii, contains: CREDIT_CARD}, models: [local]", f"{when}, models: [local]"
    )
    path.write_text(text)
    with pytest.raises(ConfigError, match=message) as info:
        Engine.from_file(path)
    assert "bad.yaml" in str(info.value)


def test_route_input_writes_the_set_as_a_list(config_path: Path, tmp_path: Path) -> None:
    src = tmp_path / "in.jsonl"
    src.write_text(
        json.dumps({"id": 1, "prompt": "SSN 078-05-1120, card 4111 1111 1111 1111"})
        + "\n"
        + json.dumps({"id": 2, "prompt": "hello"})
        + "\n"
    )
    out = tmp_path / "out.jsonl"
    assert (
        main(["route", "--config", str(config_path), "--input", str(src), "--output", str(out)])
        == 0
    )
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert rows[0]["signals"]["pii"] == ["CREDIT_CARD", "US_SSN"]
    assert rows[0]["decision"] == "cards"
    assert rows[1]["signals"]["pii"] == [] and rows[1]["decision"] == "default"
