"""Per-backend health: a circuit breaker and live statistics (latency EWMA, in-flight count).

Breaker semantics: ``closed`` lets every request through and counts consecutive
failures; at ``failure_threshold`` it ``open``s and refuses for ``reset_timeout_s``;
then it is ``half_open`` and lets exactly one probe through: success closes it,
failure opens it again.  This works the same when a model has one backend.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

BreakerState = Literal["closed", "open", "half_open"]


@dataclass(slots=True)
class CircuitBreaker:
    failure_threshold: int = 5
    reset_timeout_s: float = 30.0
    clock: Callable[[], float] = time.monotonic
    failures: int = 0
    opened_at: float = 0.0
    probing: bool = False
    _state: BreakerState = field(default="closed")

    @property
    def state(self) -> BreakerState:
        if self._state == "open" and self.clock() - self.opened_at >= self.reset_timeout_s:
            self._state = "half_open"
            self.probing = False
        return self._state

    def available(self) -> bool:
        """Would a request be let through now (without claiming the probe)?"""
        state = self.state
        return state == "closed" or (state == "half_open" and not self.probing)

    def acquire(self) -> bool:
        """Claim permission to send one request; in half-open this claims the single probe."""
        state = self.state
        if state == "closed":
            return True
        if state == "half_open" and not self.probing:
            self.probing = True
            return True
        return False

    def record_success(self) -> None:
        self.failures = 0
        self.probing = False
        self._state = "closed"

    def record_failure(self) -> None:
        self.failures += 1
        self.probing = False
        if self._state == "half_open" or self.failures >= self.failure_threshold:
            self._state = "open"
            self.opened_at = self.clock()


@dataclass(slots=True)
class LiveStats:
    """Exponentially weighted latency and the number of requests in flight."""

    alpha: float = 0.2
    latency_ms: float | None = None
    in_flight: int = 0
    requests: int = 0
    failures: int = 0

    def observe_latency(self, ms: float) -> None:
        prev = self.latency_ms
        self.latency_ms = ms if prev is None else prev + self.alpha * (ms - prev)
