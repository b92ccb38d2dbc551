"""Budgets: spend counted from the upstreams' usage, kept on target or enforced.

::

    budget: {usd: 50, per: day, mode: steer}             # global (top level)
    decisions:
      - name: chat
        budget: {usd: 5, per: hour, mode: [steer, hard]}  # this decision's requests
    # scope: key  -> each gateway key has its own budget of this size

- Spend is every answered request's ``cost_usd`` (from the upstream's reported usage;
  a plan's is every call's), added to a counter per budget and period in the engine's
  store (memory, SQLite or Redis: replicas sharing a Redis share the budget).  A
  period is a calendar minute, hour, day (UTC) or 30-day month.
- ``mode: hard``: a request that finds the budget spent is refused with 429
  (``budget_exceeded``, the reset time in the message) before any model is called.
- ``mode: steer``: the willingness to pay of the decision's learned selector (the W of
  ``select: {router: ..., willingness_to_pay: W}``) is scaled by how the spending runs
  against the period's pace: ``scale = exp(-gain * (pace - 1))`` clamped to [1/16, 16],
  ``pace = spent / (usd * elapsed share of the period)``; spending faster than the
  budget lowers W (cheaper models win where quality is cheap to keep), slower raises
  it.  The W in force is in the trace (``willingness_to_pay``); a selector that does
  not weigh cost (static, cheapest, ...) is not steered.
- A store that does not answer never fails a request: the budget is then unknown
  (not enforced, not steered) and the log says so.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from polyroute.errors import ConfigError, RequestError
from polyroute.types import JSON, Store, Trace

_LOG = logging.getLogger("polyroute.budget")
PERIODS_S = {"minute": 60.0, "hour": 3600.0, "day": 86400.0, "month": 30 * 86400.0}
#: the pace of the first part of a period is noisy: it counts from this share on
MIN_ELAPSED = 0.05
MAX_SCALE = 16.0
_ADJECTIVE = {"minute": "per-minute", "hour": "hourly", "day": "daily", "month": "monthly"}
#: how long a replica trusts its last reading of a shared counter
REFRESH_S = 1.0


class BudgetExceeded(RequestError):
    status = 429
    type = "rate_limit_error"
    code = "budget_exceeded"


@dataclass(frozen=True, slots=True)
class Budget:
    name: str
    usd: float
    per: str
    steer: bool
    hard: bool
    scope: Literal["all", "key"] = "all"
    gain: float = 1.0

    @property
    def period_s(self) -> float:
        return PERIODS_S[self.per]

    def key(self, client: str, now: float) -> str:
        period = int(now // self.period_s)
        who = f":{client}" if self.scope == "key" else ""
        return f"budget:{self.name}{who}:{period}"

    def scale(self, spent: float, now: float) -> float:
        """The willingness-to-pay multiplier for ``spent`` so far in the current period."""
        elapsed = max((now % self.period_s) / self.period_s, MIN_ELAPSED)
        pace = spent / (self.usd * elapsed)
        return min(max(math.exp(-self.gain * (pace - 1.0)), 1 / MAX_SCALE), MAX_SCALE)

    def resets_at(self, now: float) -> str:
        end = (int(now // self.period_s) + 1) * self.period_s
        return datetime.fromtimestamp(end, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_budget(raw: Any, name: str, where: str) -> Budget:
    """``budget: {usd, per, mode, scope, gain}``; a ConfigError names the field."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected {{usd: NUMBER, per: day, mode: steer|hard}}")
    unknown = sorted(set(raw) - {"usd", "per", "mode", "scope", "gain"})
    if unknown:
        raise ConfigError(f"{where}: unknown field {unknown[0]!r}; expected usd, per, mode, scope")
    usd = raw.get("usd")
    if isinstance(usd, bool) or not isinstance(usd, int | float) or not usd > 0:
        raise ConfigError(f"{where}.usd: expected a positive number of US dollars")
    per = raw.get("per", "day")
    if per not in PERIODS_S:
        raise ConfigError(f"{where}.per: expected one of {list(PERIODS_S)}")
    mode = raw.get("mode", "steer")
    modes = [mode] if isinstance(mode, str) else mode
    if not isinstance(modes, list) or not modes or any(m not in ("steer", "hard") for m in modes):
        raise ConfigError(f"{where}.mode: expected steer, hard, or [steer, hard]")
    scope = raw.get("scope", "all")
    if scope not in ("all", "key"):
        raise ConfigError(f"{where}.scope: expected all (one budget) or key (one per gateway key)")
    gain = raw.get("gain", 1.0)
    if isinstance(gain, bool) or not isinstance(gain, int | float) or not 0 < gain <= 10:
        raise ConfigError(f"{where}.gain: expected a number in (0, 10]")
    return Budget(name, float(usd), per, "steer" in modes, "hard" in modes, scope, float(gain))


class Budgets:
    """The budgets of one engine over its store, with a short-lived local reading of
    each counter (so a request costs no store round trip per budget)."""

    def __init__(self, store: Store, clock: Any = time.time) -> None:
        self.store = store
        self.clock = clock
        self._seen: dict[str, tuple[float, float]] = {}  # key -> (spent, read at)

    async def spent(self, budget: Budget, client: str) -> float | None:
        now = self.clock()
        key = budget.key(client, now)
        cached = self._seen.get(key)
        if cached is not None and now - cached[1] < REFRESH_S:
            return cached[0]
        try:
            raw = await self.store.get(key)
        except Exception as exc:
            _LOG.warning(
                "budget %s: the store does not answer (%s); not enforced", budget.name, exc
            )
            return None
        value = float(raw) if raw else 0.0
        self._remember(key, value, now)
        return value

    async def check(self, budgets: tuple[Budget, ...], trace: Trace) -> None:
        """Before selection: refuse on a spent hard budget; set the steering scale."""
        now = self.clock()
        scales: list[float] = []  # the tightest steering budget wins
        for budget in budgets:
            spent = await self.spent(budget, trace.client)
            if spent is None:
                continue
            if budget.hard and spent >= budget.usd:
                period = _ADJECTIVE[budget.per]
                raise BudgetExceeded(
                    f"the {period} budget {budget.name!r} of ${budget.usd:g} is spent "
                    f"(${spent:.4f}); it resets at {budget.resets_at(now)}"
                )
            if budget.steer:
                scales.append(budget.scale(spent, now))
        trace.budget_scale = min(scales) if scales else 1.0

    async def charge(self, budgets: tuple[Budget, ...], trace: Trace) -> None:
        """After the answer: add the request's cost to each budget (errors logged)."""
        cost = trace.cost_usd
        if not cost or cost <= 0:
            return
        now = self.clock()
        for budget in budgets:
            key = budget.key(trace.client, now)
            try:
                total = await self.store.incr(key, cost)
            except Exception as exc:
                _LOG.warning("budget %s: could not count $%g (%s)", budget.name, cost, exc)
                continue
            self._remember(key, total, now)

    def tap(self, budgets: tuple[Budget, ...], trace: Trace) -> ChargeTap:
        """For a stream: charge when it ends (after the usage tap has set its cost)."""
        return ChargeTap(self, budgets, trace)

    def _remember(self, key: str, value: float, now: float) -> None:
        if len(self._seen) > 4096:
            self._seen.clear()
        self._seen[key] = (value, now)


class ChargeTap:
    """A stream's charge, when it completes (a cut stream is not charged: its usage is
    unknown, and the log line says so)."""

    def __init__(self, budgets: Budgets, which: tuple[Budget, ...], trace: Trace) -> None:
        self.budgets, self.which, self.trace = budgets, which, trace

    def chunk(self, chunk: JSON) -> None:
        return None

    async def end(self) -> list[JSON]:
        await self.budgets.charge(self.which, self.trace)
        return []


__all__ = ["Budget", "BudgetExceeded", "Budgets", "ChargeTap", "parse_budget"]
