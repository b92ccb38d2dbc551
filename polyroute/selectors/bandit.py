"""``bandit``: a selector that learns from traffic (``polyroute.online``).

::

    select: {type: bandit, algorithm: linucb, willingness_to_pay: 0.01}
    select: {type: bandit, algorithm: thompson, warm_start: router/, willingness_to_pay: 0.01}
    select: {type: bandit, algorithm: ema, willingness_to_pay: 0.01}

- Each request: the prompt's features (the static encoder's first ``dim`` coordinates,
  its length, a bias: ``polyroute.online.features``; about 0.1 ms) and, with
  ``warm_start: DIR``, an offline router artifact's predicted quality and cost per model
  (the bandit starts as good as that artifact); the bandit picks a model; the others
  follow in config order (failover).  The trace says which was picked, whether it was
  exploration, and the willingness to pay in force (a steering budget scales it; with a
  warm start, the spend anchor moves it so that learning spends what the artifact would
  have, ``polyroute.online.linear``; ``spend_anchor: 0`` turns that off).
- Learning: ``POST /v1/feedback`` for a request this selector routed updates the model
  that answered with ``quality = score``, the request's cost, its upstream latency and
  the model's configured ``energy_wh`` per request (bandit feedback: only that model); the
  reward weighs them: ``score - cost / W - latency_weight * s - energy_weight * Wh``
  (GreenServ).  ``domain_signal: NAME`` gives the EMA router its per-label averages.
  A request is learned from once, on its first rating (a bandit has no
  undo; later ratings still update the trace log).  The context of each routed request is
  kept for ``pending_s`` (one hour),
  at most ``pending_max`` of them; feedback for an older request is recorded in the trace
  log but not learned from.
- Several replicas learn together through the engine's ``store`` (Redis): each update is
  appended to a shared log (``bandit:<decision>:...``) and every replica applies every
  other replica's updates when it next routes (polled at most every ``sync_s``); the
  store being down never fails a request (the selector keeps learning alone from its own
  state, and the trace's bandit event says ``shared: unavailable``).  A restarted replica
  replays the shared log (kept a day) and so resumes where the others are.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from polyroute.backends.backend import Backend
from polyroute.background import Background
from polyroute.errors import ConfigError
from polyroute.online import (
    Context,
    FeatureMaker,
    Outcome,
    Reward,
    artifact_priors,
    build_online_router,
)
from polyroute.online.types import OnlineRouter
from polyroute.selectors.static import healthy_first
from polyroute.types import Request, Store, Trace

_LOG = logging.getLogger("polyroute.bandit")
ALGORITHMS = {"linucb": "linucb", "thompson": "thompson", "ema": "ema"}
#: an update in the shared log lives this long (a replica down longer starts over from
#: its own state)
LOG_TTL_S = 24 * 3600.0


class BanditSelector:
    blocking = False

    def __init__(
        self,
        *,
        algorithm: str = "linucb",
        willingness_to_pay: float = math.inf,
        warm_start: str | None = None,
        dim: int = 32,
        seed: int = 0,
        pending_s: float = 3600.0,
        pending_max: int = 100_000,
        sync_s: float = 1.0,
        latency_weight: float = 0.0,
        energy_weight: float = 0.0,
        energy_wh: dict[str, float] | None = None,
        domain_signal: str | None = None,
        params: dict[str, Any] | None = None,
    ) -> None:
        if algorithm not in ALGORITHMS:
            raise ConfigError(f"algorithm: expected one of {sorted(ALGORITHMS)}")
        if not willingness_to_pay > 0:
            raise ConfigError("willingness_to_pay must be > 0")
        if algorithm == "ema" and warm_start is not None:
            raise ConfigError("warm_start applies to linucb and thompson, not to ema")
        self.algorithm = algorithm
        self.w = float(willingness_to_pay)
        self.features = FeatureMaker(dim=dim)
        self.seed = seed
        self.pending_s = pending_s
        self.pending_max = pending_max
        self.sync_s = sync_s
        self.params = dict(params or {})
        if latency_weight < 0 or energy_weight < 0:
            raise ConfigError("latency_weight and energy_weight must be >= 0")
        bad = {k: v for k, v in (energy_wh or {}).items() if not v >= 0}
        if bad:
            raise ConfigError(f"energy_wh: expected Wh per request >= 0, got {bad}")
        self.latency_weight = latency_weight
        self.energy_weight = energy_weight
        self.energy_wh = dict(energy_wh or {})
        self.domain_signal = domain_signal
        self._artifact: Any = None
        if warm_start is not None:
            from polyroute.routers.artifact import load_router

            self._artifact = load_router(Path(warm_start))
        self._router: OnlineRouter | None = None
        self._models: tuple[str, ...] = ()
        self._pending: OrderedDict[str, tuple[Context, float]] = OrderedDict()
        # shared learning (set by the engine: its store and the decision's name)
        self.store: Store | None = None
        self.name = "bandit"
        self.origin = ""
        self._applied = 0  # the shared log's last sequence number applied here
        self._last_sync = 0.0
        self._syncing: asyncio.Task[None] | None = None
        self._background = Background("bandit selector")
        self._sync_failed = False

    def bind(self, store: Store, decision: str, origin: str) -> None:
        """Learn together with the other replicas through ``store``."""
        self.store, self.name, self.origin = store, decision, origin

    # ------------------------------------------------------------------ routing

    def _router_for(self, models: tuple[str, ...]) -> OnlineRouter:
        if self._router is None or self._models != models:
            reward = Reward(self.w, self.latency_weight, self.energy_weight)
            self._router = build_online_router(
                ALGORITHMS[self.algorithm],
                dict(self.params),
                models,
                width=self.features.width,
                reward=reward,
                warm_start=self._artifact is not None,
                seed=self.seed,
                where=f"select.bandit ({self.name})",
            )
            self._models = models
        return self._router

    def _context(self, request: Request, trace: Trace) -> Context:
        prompt = request.prompt
        x = self.features.transform([prompt])[0]
        label = trace.signals.get(self.domain_signal) if self.domain_signal else None
        domain = label if isinstance(label, str) else None
        if self._artifact is None:
            return Context(x, domain=domain)
        quality, cost = artifact_priors(self._artifact, [prompt], self._models, "warm_start")
        return Context(x, quality[0], cost[0], domain)

    def order(self, candidates: Sequence[Backend], request: Request, trace: Trace) -> list[Backend]:
        self._maybe_sync()
        models = tuple(b.name for b in candidates)
        router = self._router_for(models)
        w = self.w * trace.budget_scale
        router.reward.willingness_to_pay = w
        trace.willingness_to_pay = None if math.isinf(w) else w
        context = self._context(request, trace)
        choice = router.choose(context)
        chosen = candidates[choice.model]
        self._remember(trace.trace_id, context)
        event = {"bandit": self.algorithm, "chosen": chosen.name, "explored": choice.explored}
        if choice.willingness_to_pay is not None:  # the spend anchor moved it
            trace.willingness_to_pay = choice.willingness_to_pay
            event["anchored_w"] = choice.willingness_to_pay
        if self._sync_failed:  # learning alone (from its warm start) until the store answers
            event["shared"] = "unavailable"
        trace.events.append(event)
        rest = [b for b in candidates if b is not chosen]
        return healthy_first([chosen, *rest])

    def _remember(self, trace_id: str, context: Context) -> None:
        now = time.monotonic()
        pending = self._pending
        pending[trace_id] = (context, now)
        while pending and (
            len(pending) > self.pending_max
            or next(iter(pending.values()))[1] < now - self.pending_s
        ):
            pending.popitem(last=False)

    # ----------------------------------------------------------------- learning

    def learn(
        self, trace_id: str, model: str, score: float, cost: float, latency_s: float = 0.0
    ) -> bool:
        """Feedback for a request this selector routed (the answering ``model``, its
        ``score`` in [0, 1], cost in USD and upstream latency); False when its context is
        gone.  A model's ``energy_wh`` (per request, as configured) joins the outcome."""
        kept = self._pending.pop(trace_id, None)  # a request is learned from once
        if kept is None or self._router is None or model not in self._models:
            return False
        context = kept[0]
        self._apply(context, model, score, cost, latency_s)
        if self.store is not None:
            event = {
                "origin": self.origin,
                "x": context.x.tolist(),
                "pq": None if context.prior_quality is None else context.prior_quality.tolist(),
                "pc": None if context.prior_cost is None else context.prior_cost.tolist(),
                "model": model,
                "score": score,
                "cost": cost,
                "latency_s": latency_s,
                "domain": context.domain,
            }
            self._background.spawn(self._publish(event))
        return True

    def _apply(
        self, context: Context, model: str, score: float, cost: float, latency_s: float = 0.0
    ) -> None:
        assert self._router is not None
        energy = self.energy_wh.get(model, 0.0)
        outcome = Outcome(score, cost, latency_s, energy)
        self._router.update(context, self._models.index(model), outcome)

    # --------------------------------------------------------------- replicas

    def _key(self, what: str) -> str:
        return f"bandit:{self.name}:{what}"

    async def _publish(self, event: dict[str, Any]) -> None:
        assert self.store is not None
        try:
            seq = int(await self.store.incr(self._key("seq")))
            await self.store.set(self._key(f"ev:{seq}"), orjson.dumps(event), LOG_TTL_S)
        except Exception as exc:
            self._sync_failed = True
            _LOG.warning("bandit %s: could not share an update (%s)", self.name, exc)

    def _maybe_sync(self) -> None:
        if self.store is None or self._router is None:
            return
        now = time.monotonic()
        if now - self._last_sync < self.sync_s or (self._syncing and not self._syncing.done()):
            return
        self._last_sync = now
        self._syncing = self._background.spawn(self._sync())

    async def _sync(self) -> None:
        """Apply the other replicas' updates appended since the last sync."""
        assert self.store is not None
        try:
            raw = await self.store.get(self._key("seq"))
            last = int(float(raw)) if raw else 0
            for seq in range(self._applied + 1, last + 1):
                blob = await self.store.get(self._key(f"ev:{seq}"))
                self._applied = seq
                if blob is None:
                    continue
                event = orjson.loads(blob)
                if event.get("origin") == self.origin or event.get("model") not in self._models:
                    continue
                pq, pc = event.get("pq"), event.get("pc")
                domain = event.get("domain")
                context = Context(
                    np.asarray(event["x"], dtype=np.float64),
                    None if pq is None else np.asarray(pq, dtype=np.float64),
                    None if pc is None else np.asarray(pc, dtype=np.float64),
                    domain if isinstance(domain, str) else None,
                )
                model, score = str(event["model"]), float(event["score"])
                latency = float(event.get("latency_s") or 0.0)
                self._apply(context, model, score, float(event["cost"]), latency)
        except Exception as exc:
            self._sync_failed = True
            _LOG.warning("bandit %s: could not read the shared updates (%s)", self.name, exc)
        else:
            self._sync_failed = False

    async def sync_now(self) -> None:
        """Apply the shared updates now (tests, start-up)."""
        if self.store is not None and self._router is not None:
            await self._sync()


__all__ = ["BanditSelector"]
