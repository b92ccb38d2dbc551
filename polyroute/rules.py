"""The rule language: boolean expressions over signals, parsed once and compiled to closures.

Grammar (YAML)::

    rule := true | false
          | SIGNAL_NAME                      # the signal fires (truthy, or a score >= threshold)
          | {all: [rule, ...]} | {any: [rule, ...]} | {not: rule}
          | {signal: NAME, OP: VALUE}        # OP in gt, ge, lt, le, eq, ne, in; + unknown: BOOL
          | {signal: NAME, contains: MEMBER} | {signal: NAME, contains_any: [MEMBER, ...]}

``in`` takes a list of labels.  ``contains``/``contains_any`` test a set-valued
signal (``pii``) and are the only comparisons allowed on one; ``sets`` maps each
set-valued signal to the members it may hold, so a typo is a load error.  A
signal that failed or timed out is unknown (``None``): a comparison on it is false,
unless the comparison says ``unknown: true`` (fail closed: ``{signal: jailbreak,
ge: 0.5, unknown: true}`` also holds when the jailbreak model could not answer).  A
bare ``SIGNAL_NAME`` never fires on unknown.  Unknown signal names are reported when
the engine is built, using :func:`signals_used`.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping
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
_SET_OPS = ("contains", "contains_any")
Sets = Mapping[str, frozenset[str]]


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


def compile_rule(raw: Any, where: str = "when", sets: Sets | None = None) -> Predicate:
    """Validate ``raw`` and return a fast predicate; ``where`` prefixes error messages.

    ``sets``: the set-valued signals and their possible members (``None``: unchecked)."""
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
        return _compile_compare(raw, where, sets)
    if len(raw) != 1:
        raise ConfigError(f"{where}: expected exactly one of all/any/not, got {sorted(raw)}")
    ((key, value),) = raw.items()
    if key == "not":
        inner = compile_rule(value, f"{where}.not", sets)
        return lambda s: not inner(s)
    if key in ("all", "any"):
        if not isinstance(value, list) or not value:
            raise ConfigError(f"{where}.{key}: expected a non-empty list of rules")
        parts = tuple(compile_rule(v, f"{where}.{key}[{i}]", sets) for i, v in enumerate(value))
        if key == "all":
            return lambda s: all(p(s) for p in parts)
        return lambda s: any(p(s) for p in parts)
    raise ConfigError(f"{where}: unknown operator {key!r}; expected all, any, not or signal")


def _compile_compare(raw: dict[str, Any], where: str, sets: Sets | None) -> Predicate:
    name = raw["signal"]
    if not isinstance(name, str) or not name:
        raise ConfigError(f"{where}.signal: expected a signal name, got {name!r}")
    unknown = raw.get("unknown", False)
    if not isinstance(unknown, bool):
        raise ConfigError(f"{where}.unknown: expected true or false, got {unknown!r}")
    ops = [k for k in raw if k not in ("signal", "unknown")]
    if len(ops) != 1 or ops[0] not in (*_COMPARE, *_SET_OPS):
        raise ConfigError(
            f"{where}: expected one comparison ({', '.join((*_COMPARE, *_SET_OPS))}) "
            f"beside 'signal', got {ops}"
        )
    op = ops[0]
    if op in _SET_OPS:
        return _compile_contains(name, op, raw[op], where, sets, unknown)
    if sets is not None and name in sets:
        raise ConfigError(
            f"{where}.{op}: signal {name!r} is a set; compare it with contains or contains_any"
        )
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
            return unknown
        if numeric and (isinstance(value, str)):
            return False
        return bool(compare(value, target))

    return predicate


def _compile_contains(  # noqa: PLR0917 (private; one call site)
    name: str, op: str, target: Any, where: str, sets: Sets | None, unknown: bool
) -> Predicate:
    if sets is not None and name not in sets:
        raise ConfigError(
            f"{where}.{op}: signal {name!r} is not set-valued; "
            f"{op} works on: {sorted(sets) or 'none configured'}"
        )
    if op == "contains":
        if not isinstance(target, str) or not target:
            raise ConfigError(f"{where}.contains: expected one name, got {target!r}")
        wanted = frozenset([target])
    else:
        if (
            not isinstance(target, list)
            or not target
            or not all(isinstance(t, str) for t in target)
        ):
            raise ConfigError(f"{where}.contains_any: expected a list of names, got {target!r}")
        wanted = frozenset(target)
    if sets is not None and not wanted <= sets[name]:
        raise ConfigError(
            f"{where}.{op}: unknown {sorted(wanted - sets[name])} for signal {name!r}; "
            f"it reports {sorted(sets[name])}"
        )

    def predicate(s: SignalSource) -> bool:
        value = s.get(name)
        if value is None:
            return unknown
        return isinstance(value, frozenset) and not wanted.isdisjoint(value)

    return predicate
