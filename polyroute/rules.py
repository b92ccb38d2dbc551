"""The rule language: boolean expressions over signals, parsed once and compiled to closures.

Grammar (YAML)::

    rule := true | false
          | SIGNAL_NAME                      # the signal fires (truthy, or a score >= threshold)
          | {all: [rule, ...]} | {any: [rule, ...]} | {not: rule}
          | {signal: NAME, OP: VALUE}        # OP in gt, ge, lt, le, eq, ne, in

``in`` takes a list of labels.  A comparison on a missing (``None``) value is
false.  Unknown signal names are reported by ``Config`` at load time using
:func:`signals_used`.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any

from polyroute.errors import ConfigError
from polyroute.types import SignalSource, SignalValue

Predicate = Callable[[SignalSource], bool]

_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "gt": operator.gt,
    "ge": operator.ge,
    "lt": operator.lt,
    "le": operator.le,
    "eq": operator.eq,
    "ne": operator.ne,
    "in": lambda value, options: value in options,
}
_NUMERIC = {"gt", "ge", "lt", "le"}


def signals_used(raw: Any) -> set[str]:
    """Every signal name a (valid) rule mentions."""
    if isinstance(raw, str):
        return {raw}
    if isinstance(raw, dict):
        if "signal" in raw:
            return {raw["signal"]}
        found: set[str] = set()
        for key in ("all", "any"):
            for sub in raw.get(key, []):
                found |= signals_used(sub)
        if "not" in raw:
            found |= signals_used(raw["not"])
        return found
    return set()


def compile_rule(raw: Any, where: str = "when") -> Predicate:
    """Validate ``raw`` and return a fast predicate; ``where`` prefixes error messages."""
    if isinstance(raw, bool):
        return (lambda _s: True) if raw else (lambda _s: False)
    if isinstance(raw, str):
        if not raw:
            raise ConfigError(f"{where}: expected a signal name, got an empty string")
        return lambda s: s.fires(raw)
    if not isinstance(raw, dict) or len(raw) == 0:
        raise ConfigError(
            f"{where}: expected true/false, a signal name, or a mapping with one of "
            f"all/any/not/signal; got {raw!r}"
        )
    if "signal" in raw:
        return _compile_compare(raw, where)
    if len(raw) != 1:
        raise ConfigError(f"{where}: expected exactly one of all/any/not, got {sorted(raw)}")
    ((key, value),) = raw.items()
    if key == "not":
        inner = compile_rule(value, f"{where}.not")
        return lambda s: not inner(s)
    if key in ("all", "any"):
        if not isinstance(value, list) or not value:
            raise ConfigError(f"{where}.{key}: expected a non-empty list of rules")
        parts = tuple(compile_rule(v, f"{where}.{key}[{i}]") for i, v in enumerate(value))
        if key == "all":
            return lambda s: all(p(s) for p in parts)
        return lambda s: any(p(s) for p in parts)
    raise ConfigError(f"{where}: unknown operator {key!r}; expected all, any, not or signal")


def _compile_compare(raw: dict[str, Any], where: str) -> Predicate:
    name = raw["signal"]
    if not isinstance(name, str) or not name:
        raise ConfigError(f"{where}.signal: expected a signal name, got {name!r}")
    ops = [k for k in raw if k != "signal"]
    if len(ops) != 1 or ops[0] not in _COMPARE:
        raise ConfigError(
            f"{where}: expected one comparison ({', '.join(_COMPARE)}) beside 'signal', got {ops}"
        )
    op = ops[0]
    target = raw[op]
    if op in _NUMERIC and (isinstance(target, bool) or not isinstance(target, int | float)):
        raise ConfigError(f"{where}.{op}: expected a number, got {target!r}")
    if op == "in":
        if not isinstance(target, list):
            raise ConfigError(f"{where}.in: expected a list of values, got {target!r}")
        target = frozenset(target)
    compare = _COMPARE[op]
    numeric = op in _NUMERIC

    def predicate(s: SignalSource) -> bool:
        value: SignalValue = s.get(name)
        if value is None:
            return False
        if numeric and (isinstance(value, str)):
            return False
        return bool(compare(value, target))

    return predicate
