"""Disjoint linear contextual bandits: :class:`LinUCB` and :class:`LinearThompson`.

Each model (arm) ``a`` keeps a ridge regression of every target of
:data:`~polyroute.online.types.TARGETS` (quality, cost, latency, energy) on the
arm's features ``x_a``, sharing one design matrix ``A_a = Lambda + sum x x^T``
(only its inverse is stored, updated by Sherman-Morrison: O(d^2) per feedback).
Because the targets are learned apart, the utility ``quality - cost / W - ...``
is formed at choice time and ``W`` may change online (the budget autopilot).

Features: ``x_a = context.x`` (whose last entry must be the constant bias 1), and
with ``warm_start=True`` also the artifact's predicted quality and estimated cost of
``a`` (``context.prior_quality[a]``, ``context.prior_cost[a]``) with prior
coefficients 1 of weight ``prior_weight``: the initial estimate *is* the
artifact's, so a warm bandit starts making the artifact's choices and learns
corrections (e.g. a model that got worse: its coefficient on the prior falls).
Cold, the bias' prior quality coefficient is ``optimism`` (weight ``reg``), so
untried models look good and the greedy choice tries each.

Choosing: the greedy model maximises the estimated utility (ties: cheaper
estimate, then lower column); the exploring model maximises utility plus
``alpha * sqrt(x^T A^-1 x)`` (LinUCB) or plus that width times a standard normal
draw (Thompson sampling, sampled per arm on the scalar ``theta . x``: O(d^2)).
The exploring pick is taken only while at most ``exploration_budget`` of all
choices so far differ from the greedy one.  ``reg`` is the prior precision of the
shared features (default :data:`COLD_REG` cold, :data:`WARM_REG` warm).
``forget < 1`` discounts an arm's data by that factor on each of its updates, to
follow drift; the prior is given back one coordinate per update (see ``_forget``).

Spend anchor (warm only; ``spend_anchor`` = :data:`SPEND_ANCHOR` by default, 0 turns
it off): learning must not silently spend more than the router it started from, and
should buy what quality it can with that money.  Each update adds to sums discounted
over about ``anchor_horizon`` answers the spend reported and what the warm start would
have spent on that request (``spend_anchor`` times the bandit's own current cost
estimate of the model the artifact picks at the configured ``W``: the artifact's choice
is known, its cost is learned).  Choosing, the bandit weighs cost at
``W * exp(clip(ANCHOR_GAIN * ahead, -ANCHOR_LIMIT, ANCHOR_UP))``, where ``ahead`` is
how many requests' worth the anchor's spend leads the bandit's: an integral controller
that holds the bandit's spend at the anchor, so the corrections it learns buy quality
at the artifact's cost rather than move it to dearer (or cheaper) models.  The ``W`` it
chose at is in :class:`~polyroute.online.types.Choice`.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from polyroute import curves
from polyroute.errors import ConfigError
from polyroute.online.budget import integral_w
from polyroute.online.state import LinearState, rng_from
from polyroute.online.types import TARGETS, Choice, Context, Outcome, Reward, Vector

Matrix = np.ndarray[Any, np.dtype[np.float64]]
#: default ``reg`` (prior precision of the shared features): cold, the data speaks soon;
#: warm, the artifact's prior dominates and only consistent evidence corrects it
COLD_REG = 1.0
WARM_REG = 100.0
#: the spend anchor's integral gain (per request's worth of spend ahead), and how far it
#: may move ``W``: a quarter to 4 times, so a model that fails outright is still left
#: for a dearer one (holding dcrouter's spend never needed more: BENCHMARKS.md)
ANCHOR_GAIN = 0.1
ANCHOR_LIMIT = math.log(4.0)
ANCHOR_UP = math.log(4.0)
#: the default ``spend_anchor``: 3 % under the warm start's spend, a margin for the
#: error of its estimate (the anchor tracks within about 1 %: BENCHMARKS.md)
SPEND_ANCHOR = 0.97


class LinearBandit:
    """Shared machinery of :class:`LinUCB` and :class:`LinearThompson`."""

    def __init__(
        self,
        models: tuple[str, ...],
        dim: int,
        *,
        reward: Reward | None = None,
        alpha: float = 0.1,
        exploration_budget: float = 0.05,
        reg: float | None = None,
        optimism: float = 1.0,
        warm_start: bool = False,
        prior_weight: float = 20.0,
        forget: float = 1.0,
        spend_anchor: float = SPEND_ANCHOR,
        anchor_horizon: float = 500.0,
        seed: int | None = 0,
    ) -> None:
        if not models or dim < 1:
            raise ConfigError("online bandit: need at least one model and a feature width >= 1")
        if reg is not None and not reg > 0:
            raise ConfigError(f"online bandit: reg must be > 0, got {reg}")
        if alpha < 0 or not 0 <= exploration_budget <= 1 or not prior_weight > 0:
            raise ConfigError(
                "online bandit: alpha >= 0, exploration_budget in [0, 1] and prior_weight > 0 "
                "expected"
            )
        if not 0 < forget <= 1:
            raise ConfigError(f"online bandit: forget must be in (0, 1], got {forget}")
        if not spend_anchor >= 0 or not anchor_horizon >= 1:
            raise ConfigError(
                "online bandit: spend_anchor >= 0 (0 = off) and anchor_horizon >= 1 expected"
            )
        self.models = tuple(models)
        self.dim = dim
        self.reward = reward or Reward()
        self.alpha = alpha
        self.exploration_budget = exploration_budget
        self.reg = reg
        self.optimism = optimism
        self.warm_start = warm_start
        self.prior_weight = prior_weight
        self.forget = forget
        self.spend_anchor = spend_anchor if warm_start else 0.0
        self.anchor_horizon = anchor_horizon
        self.seed = seed
        self.state = self.initial_state()
        self._rng = rng_from(self.state.rng)

    # ----------------------------------------------------------------- state

    @property
    def arm_dim(self) -> int:
        return self.dim + (2 if self.warm_start else 0)

    def initial_state(self) -> LinearState:
        precision, mean = self._prior()
        return LinearState.prior(self.models, precision, mean, self.seed)

    def _prior(self) -> tuple[Vector, Matrix]:
        """``Lambda``'s diagonal ``[arm_dim]``, prior coefficients ``[targets x arm_dim]``."""
        reg = self.reg if self.reg is not None else WARM_REG if self.warm_start else COLD_REG
        precision = np.full(self.arm_dim, reg)
        mean = np.zeros((len(TARGETS), self.arm_dim))
        if self.warm_start:
            precision[-2:] = self.prior_weight
            mean[0, -2] = 1.0  # quality = the artifact's predicted quality
            mean[1, -1] = 1.0  # cost = the artifact's estimated cost
        else:
            mean[0, self.dim - 1] = self.optimism  # the bias: untried models look good
        return precision, mean

    def to_dict(self) -> dict[str, Any]:
        self.state.rng = dict(self._rng.bit_generator.state)
        return self.state.to_dict()

    def load(self, obj: Any, where: str = "linear bandit state") -> None:
        """Take a state from :meth:`to_dict` (same models and feature width)."""
        state = LinearState.from_dict(obj, where)
        if state.models != self.models or state.dim != self.arm_dim:
            raise ConfigError(
                f"{where}: state is for models {list(state.models)} with {state.dim} features; "
                f"this router has {list(self.models)} with {self.arm_dim}"
            )
        self.state = state
        self._rng = rng_from(state.rng)

    # ----------------------------------------------------------------- choose / update

    def arm_features(self, context: Context) -> Matrix:
        """``[models x arm_dim]``: the shared features, plus each model's priors when warm."""
        x = np.asarray(context.x, dtype=np.float64)
        if x.shape != (self.dim,):
            raise ConfigError(f"online bandit: expected {self.dim} features, got {x.shape}")
        rows = np.broadcast_to(x, (len(self.models), self.dim))
        if not self.warm_start:
            return np.ascontiguousarray(rows)
        if context.prior_quality is None or context.prior_cost is None:
            raise ConfigError("online bandit: warm_start needs prior_quality and prior_cost")
        priors = np.stack([context.prior_quality, context.prior_cost], axis=1)
        return np.concatenate([rows, priors], axis=1)

    def estimates(self, xs: Matrix) -> tuple[Matrix, Vector]:
        """Estimated targets ``[models x targets]`` and ``x^T A^-1 x`` ``[models]``."""
        ax = np.einsum("mij,mj->mi", self.state.a_inv, xs)
        means = np.einsum("mtj,mj->mt", self.state.b, ax)
        return means, np.maximum(np.einsum("mi,mi->m", xs, ax), 0.0)

    def anchored_w(self) -> float:
        """The ``W`` the spend anchor prices cost at now (the module docstring)."""
        w = self.reward.willingness_to_pay
        target, spent, count = self.state.anchor
        if not self.spend_anchor or math.isinf(w) or target <= 0 or count <= 0:
            return w
        ahead = (target - spent) / (target / count)
        return integral_w(w, ahead, ANCHOR_GAIN, -ANCHOR_LIMIT, ANCHOR_UP)

    def choose(self, context: Context) -> Choice:
        means, var = self.estimates(self.arm_features(context))
        w = self.anchored_w()
        util = means @ self.reward.weights(w)
        greedy = int(curves.choose(util[None, :], means[None, :, 1], 0.0)[0])
        score = self._explore_score(util, np.sqrt(var))
        pick = int(np.argmax(score))
        state = self.state
        allowed = state.explored + 1 <= self.exploration_budget * (state.chosen + 1)
        if pick != greedy and not allowed:
            pick = greedy
        state.chosen += 1
        state.explored += int(pick != greedy)
        moved = None if w == self.reward.willingness_to_pay else w
        return Choice(pick, greedy, pick != greedy, moved)

    def update(self, context: Context, model: int, outcome: Outcome) -> None:
        xs = self.arm_features(context)
        if self.spend_anchor:
            self._anchor(context, xs, outcome.cost)
        x = xs[model]
        s = self.state
        if self.forget < 1.0:
            self._forget(model)
        ax = s.a_inv[model] @ x
        s.a_inv[model] -= np.outer(ax, ax) / (1.0 + float(x @ ax))
        s.b[model] += np.outer(outcome.targets(), x)
        s.pulls[model] += 1.0

    def _anchor(self, context: Context, xs: Matrix, cost: float) -> None:
        """Add one request to the spend anchor's discounted sums (the module docstring)."""
        assert context.prior_quality is not None and context.prior_cost is not None
        w = self.reward.willingness_to_pay
        pick = int(
            curves.choose(
                context.prior_quality[None, :],
                context.prior_cost[None, :],
                0.0 if math.isinf(w) else 1.0 / w,
            )[0]
        )
        ax = self.state.a_inv[pick] @ xs[pick]
        would = max(0.0, float(self.state.b[pick][1] @ ax))
        keep = 1.0 - 1.0 / self.anchor_horizon
        self.state.anchor = self.state.anchor * keep + [self.spend_anchor * would, cost, 1.0]

    def _forget(self, model: int) -> None:
        """Discount the arm's statistics by ``forget`` and give back, one coordinate ``k``
        per update in turn, ``d (1 - forget)`` times the prior's share of it (a rank-one
        update): on average the prior stays whole while the data is discounted."""
        s, gamma = self.state, self.forget
        s.a_inv[model] /= gamma
        s.b[model] *= gamma
        precision, mean = self._prior()
        k = int(s.pulls[model]) % self.arm_dim
        p = (1.0 - gamma) * self.arm_dim * precision[k]
        col = s.a_inv[model][:, k].copy()
        s.a_inv[model] -= p * np.outer(col, col) / (1.0 + p * col[k])
        s.b[model][:, k] += p * mean[:, k]

    def _explore_score(self, util: Vector, width: Vector) -> Vector:
        raise NotImplementedError


class LinUCB(LinearBandit):
    """Optimism under uncertainty: utility plus ``alpha`` times the estimate's width."""

    def _explore_score(self, util: Vector, width: Vector) -> Vector:
        return util + self.alpha * width


class LinearThompson(LinearBandit):
    """Thompson sampling: utility plus ``alpha`` times the width times a normal draw."""

    def _explore_score(self, util: Vector, width: Vector) -> Vector:
        draw = self._rng.standard_normal(len(util))
        return util + self.alpha * width * draw
