"""An ORCH-style EMA router: per (model, domain label) moving averages, max estimated utility.

Each feedback moves the averages of the targets (quality, cost, latency, energy)
of the chosen model by ``decay`` toward the observation (the first observation
sets them), in the global row and in the row of the request's domain label, if
any.  ``choose`` takes the model of highest utility ``quality - cost / W - ...``,
reading a model's domain row once it has an observation there (else the global
row); a model never observed is tried first.  With probability ``epsilon`` it
picks a model at random instead.  O(models) per choice and per feedback.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from polyroute import curves
from polyroute.errors import ConfigError
from polyroute.online.state import EMAState, rng_from
from polyroute.online.types import Choice, Context, Outcome, Reward


class EMARouter:
    """See the module docstring; ``decay`` in (0, 1], ``epsilon`` in [0, 1]."""

    def __init__(
        self,
        models: tuple[str, ...],
        *,
        reward: Reward | None = None,
        decay: float = 0.05,
        epsilon: float = 0.03,
        seed: int | None = 0,
    ) -> None:
        if not models or not 0 < decay <= 1 or not 0 <= epsilon <= 1:
            raise ConfigError("ema router: need models, decay in (0, 1] and epsilon in [0, 1]")
        self.models = tuple(models)
        self.reward = reward or Reward()
        self.decay = decay
        self.epsilon = epsilon
        self.seed = seed
        self.state = EMAState.empty(self.models, seed)
        self._rng = rng_from(self.state.rng)

    def to_dict(self) -> dict[str, Any]:
        self.state.rng = dict(self._rng.bit_generator.state)
        return self.state.to_dict()

    def load(self, obj: Any, where: str = "EMA router state") -> None:
        state = EMAState.from_dict(obj, where)
        if state.models != self.models:
            raise ConfigError(f"{where}: state is for models {list(state.models)}")
        self.state = state
        self._rng = rng_from(state.rng)

    def choose(self, context: Context) -> Choice:
        s = self.state
        values, counts = s.values[0], s.counts[0]
        if context.domain is not None and context.domain in s.domains:
            row = s.domains.index(context.domain)
            seen = s.counts[row] > 0
            values = np.where(seen[:, None], s.values[row], values)
        untried = np.flatnonzero(counts == 0)
        if untried.size:
            greedy = int(untried[0])
        else:
            util = values @ self.reward.weights()
            greedy = int(curves.choose(util[None, :], values[None, :, 1], 0.0)[0])
        pick = greedy
        if self._rng.random() < self.epsilon:
            pick = int(self._rng.integers(len(self.models)))
        s.chosen += 1
        s.explored += int(pick != greedy)
        return Choice(pick, greedy, pick != greedy)

    def update(self, context: Context, model: int, outcome: Outcome) -> None:
        s = self.state
        rows = [0] if not context.domain else [0, s.row(context.domain)]
        target = outcome.targets()
        for r in rows:
            first = s.counts[r, model] == 0
            step = 1.0 if first else self.decay
            s.values[r, model] += step * (target - s.values[r, model])
            s.counts[r, model] += 1.0
