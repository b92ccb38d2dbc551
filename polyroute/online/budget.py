"""The budget autopilot: moves the willingness to pay ``W`` so spend tracks a budget per query.

An integral controller in log space: after each answer,
``log W = log W0 + gain * (n * B - spent) / B`` (clamped to ``W0 * e^+-limit``), where
``n * B - spent`` is how far the stream is under its budget, in queries' worth.
Overspending lowers ``W`` (cheaper models win more often), underspending raises it.
The running spend therefore tracks ``n * B`` within a bounded number of queries'
worth, so the mean spend per query converges to ``B``.  State: ``spent``, ``count``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from polyroute.errors import ConfigError


def integral_w(w0: float, ahead: float, gain: float, low: float, high: float) -> float:
    """``w0 * exp(gain * ahead)``, the exponent clamped to ``[low, high]``: the log-space
    integral step shared by the budget autopilot and the spend anchor
    (``polyroute.online.linear``); ``ahead`` is how many queries' worth spend is behind
    its target (negative: ahead of it)."""
    return w0 * math.exp(max(low, min(high, gain * ahead)))


@dataclass
class BudgetController:
    """``budget_per_query`` B (USD), start ``w0``; see the module docstring."""

    budget_per_query: float
    w0: float
    gain: float = 0.1
    limit: float = 12.0
    spent: float = 0.0
    count: int = 0

    def __post_init__(self) -> None:
        if not self.budget_per_query > 0 or not 0 < self.w0 < math.inf or not self.gain > 0:
            raise ConfigError(
                "budget autopilot: budget_per_query > 0, a finite w0 > 0 and gain > 0 expected"
            )

    @property
    def willingness_to_pay(self) -> float:
        """The ``W`` in force for the next query."""
        under = (self.count * self.budget_per_query - self.spent) / self.budget_per_query
        return integral_w(self.w0, under, self.gain, -self.limit, self.limit)

    def observe(self, cost: float) -> float:
        """Count one answer's cost; returns the new ``W``."""
        self.spent += cost
        self.count += 1
        return self.willingness_to_pay

    def to_dict(self) -> dict[str, Any]:
        return {
            "budget_per_query": self.budget_per_query,
            "w0": self.w0,
            "gain": self.gain,
            "limit": self.limit,
            "spent": self.spent,
            "count": self.count,
        }

    @classmethod
    def from_dict(cls, obj: Any) -> BudgetController:
        try:
            return cls(**obj)
        except TypeError as exc:
            raise ConfigError(f"budget autopilot state: {exc}") from None
