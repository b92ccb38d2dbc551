"""Contracts of the online routers: what they see, what they learn from, what they want.

- :class:`Context`: what a router sees of one request before it chooses: the shared
  feature vector ``x`` (``polyroute.online.features``: the static-encoder embedding,
  its length in kilo-tokens and a bias), optionally a prior per model (an offline
  artifact's predicted quality and estimated cost, for ``warm_start``) and a domain label.
- :class:`Outcome`: what it learns after the chosen model answered (bandit feedback:
  only that model's outcome).
- :class:`Reward`: the utility it maximises, ``quality - cost / W - latency_weight *
  latency_s - energy_weight * energy_wh`` (``W`` = willingness to pay, as the offline
  routers use it; ``W = inf`` is pure quality).
- :class:`OnlineRouter`: ``choose(context) -> Choice`` and ``update(context, model,
  outcome)``; ``reward`` is public so a budget controller may move ``W`` online.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt

from polyroute.errors import ConfigError

Vector = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Context:
    """One request as an online router sees it (``prior_*`` are ``[models]`` or None)."""

    x: Vector
    prior_quality: Vector | None = None
    prior_cost: Vector | None = None
    domain: str | None = None


@dataclass(frozen=True)
class Outcome:
    """What the chosen model's answer turned out to be (quality in [0, 1], USD spent)."""

    quality: float
    cost: float
    latency_s: float = 0.0
    energy_wh: float = 0.0

    def targets(self) -> Vector:
        """The regression targets, in :data:`TARGETS` order."""
        return np.array([self.quality, self.cost, self.latency_s, self.energy_wh])


#: what the linear bandits regress on the features, one coefficient vector each
TARGETS = ("quality", "cost", "latency_s", "energy_wh")


@dataclass
class Reward:
    """The utility of an outcome (see the module docstring); ``willingness_to_pay`` may move."""

    willingness_to_pay: float = math.inf
    latency_weight: float = 0.0
    energy_weight: float = 0.0

    def __post_init__(self) -> None:
        if not self.willingness_to_pay > 0:
            raise ConfigError(f"willingness_to_pay must be > 0, got {self.willingness_to_pay}")
        if self.latency_weight < 0 or self.energy_weight < 0:
            raise ConfigError("latency_weight and energy_weight must be >= 0")

    def weights(self, willingness_to_pay: float | None = None) -> Vector:
        """Utility per unit of each of :data:`TARGETS` (utility = weights . targets), at
        ``willingness_to_pay`` if given (a spend anchor's), else at the one in force."""
        w = self.willingness_to_pay if willingness_to_pay is None else willingness_to_pay
        return np.array(
            [1.0, 0.0 if math.isinf(w) else -1.0 / w, -self.latency_weight, -self.energy_weight]
        )

    def utility(self, outcome: Outcome) -> float:
        return float(self.weights() @ outcome.targets())


@dataclass(frozen=True)
class Choice:
    """A router's pick (a column of its ``models``), its greedy pick, whether they differ,
    and the willingness to pay it chose at when a spend anchor moved it (else None)."""

    model: int
    greedy: int
    explored: bool
    willingness_to_pay: float | None = None


class OnlineRouter(Protocol):
    """A router that learns from each request's outcome (see the module docstring)."""

    models: tuple[str, ...]
    reward: Reward

    def choose(self, context: Context) -> Choice: ...

    def update(self, context: Context, model: int, outcome: Outcome) -> None: ...
