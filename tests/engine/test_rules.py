from __future__ import annotations

from typing import Any

import pytest

from polyroute.errors import ConfigError
from polyroute.rules import compile_rule, signals_used
from polyroute.types import SignalValue


class Source:
    def __init__(self, **values: SignalValue) -> None:
        self.values = values
        self.reads: list[str] = []

    def get(self, name: str) -> SignalValue:
        self.reads.append(name)
        return self.values.get(name)

    def fires(self, name: str) -> bool:
        return bool(self.get(name))


@pytest.mark.parametrize(
    ("rule", "values", "expected"),
    [
        (True, {}, True),
        (False, {}, False),
        ("math", {"math": True}, True),
        ("math", {"math": False}, False),
        ({"not": "math"}, {"math": False}, True),
        ({"all": ["a", "b"]}, {"a": True, "b": False}, False),
        ({"any": ["a", "b"]}, {"a": False, "b": True}, True),
        ({"signal": "tokens", "gt": 100}, {"tokens": 101}, True),
        ({"signal": "tokens", "gt": 100}, {"tokens": 100}, False),
        ({"signal": "tokens", "le": 100}, {"tokens": 100}, True),
        ({"signal": "lang", "eq": "fr"}, {"lang": "fr"}, True),
        ({"signal": "lang", "ne": "fr"}, {"lang": "en"}, True),
        ({"signal": "lang", "in": ["fr", "de"]}, {"lang": "de"}, True),
        ({"signal": "lang", "in": ["fr", "de"]}, {"lang": None}, False),
        ({"signal": "tokens", "gt": 1}, {"tokens": None}, False),
        ({"signal": "lang", "gt": 1}, {"lang": "en"}, False),
        ({"all": [{"any": ["a", "b"]}, {"not": {"signal": "t", "lt": 5}}]}, {"b": 1, "t": 9}, True),
    ],
)
def test_rule_semantics(rule: Any, values: dict[str, SignalValue], expected: bool) -> None:
    assert compile_rule(rule)(Source(**values)) is expected


def test_any_short_circuits_so_later_signals_are_not_computed() -> None:
    source = Source(a=True, b=True)
    assert compile_rule({"any": ["a", "b"]})(source)
    assert source.reads == ["a"]


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ({"all": []}, "decisions[0].when.all: expected a non-empty list"),
        ({"xor": ["a"]}, "unknown operator 'xor'"),
        ({"signal": "t", "gt": "ten"}, "when.gt: expected a number"),
        ({"signal": "t", "in": "fr"}, "when.in: expected a list"),
        ({"signal": "t", "gt": 1, "lt": 5}, "expected one comparison"),
        ({"all": ["a"], "any": ["b"]}, "expected exactly one of all/any/not"),
        (3, "expected true/false, a signal name"),
        ({"not": {"any": [{}]}}, "when.not.any[0]"),
    ],
)
def test_invalid_rules_name_the_path(rule: Any, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        compile_rule(rule, "decisions[0].when")


def test_signals_used_walks_the_tree() -> None:
    rule = {"all": ["a", {"not": {"signal": "b", "gt": 1}}, {"any": ["c"]}]}
    assert signals_used(rule) == {"a", "b", "c"}
