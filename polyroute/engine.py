"""The routing engine: signals -> decision -> selection -> plugins -> backends (with failover).

Usable without the server::

    engine = Engine.from_file("polyroute.yaml")
    trace = engine.route(Request.chat("prove that sqrt(2) is irrational"))
    trace.decision, trace.candidates          # ('hard-math', ['large', 'small'])
    answer, trace = await engine.complete(Request.chat("hi"))
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from polyroute.backends.backend import Backend
from polyroute.backends.failover import Dispatcher, LiveStream
from polyroute.build import build_backends, build_decisions, build_signals, build_store
from polyroute.config import Config, DecisionConfig, load_config
from polyroute.errors import ModelNotFound, RoutingError
from polyroute.redact import SecretRedactor, secrets_of
from polyroute.selectors.static import StaticSelector
from polyroute.signals import BaseSignal, SignalSet
from polyroute.types import JSON, Decision, Handler, Request, Trace

# on every upstream request, with this engine's random id: a gateway refuses (508) a
# request carrying its own id, i.e. one it sent itself through a config loop
LOOP_HEADER = "x-polyroute-loop"


def new_trace_id() -> str:
    return os.urandom(8).hex()


@dataclass(slots=True)
class Plan:
    """The outcome of routing one request: the decision and the ordered candidates."""

    decision: Decision
    candidates: list[Backend]


@dataclass(slots=True)
class StreamStart:
    """An upstream stream that has produced its first chunk."""

    backend: Backend
    first: JSON
    rest: LiveStream


class Engine:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.signals: dict[str, BaseSignal] = build_signals(config)
        for signal in self.signals.values():
            signal.text_max_chars = config.server.signal_text_max_chars
        self._route_in_thread_bytes = config.server.route_in_thread_bytes
        # a signal that runs a transformer per request (MiniLM: ~12 ms) must not run on
        # the event loop: with one configured, every decision is made in a worker thread
        self._decide_in_thread = any(s.blocking for s in self.signals.values())
        self.instance_id = os.urandom(12).hex()
        self.backends: dict[str, Backend] = build_backends(config, {LOOP_HEADER: self.instance_id})
        decisions = config.decisions or [
            DecisionConfig(name="default", models=list(config.models), select="cheapest")
        ]
        self.profiles: dict[str, list[Decision]] = {
            "auto": build_decisions(
                config, decisions, self.backends, "decisions", signals=self.signals
            )
        }
        for name, profile in config.profiles.items():
            self.profiles[name] = build_decisions(
                config,
                profile.decisions,
                self.backends,
                f"profiles.{name}.decisions",
                signals=self.signals,
            )
        self._direct = {
            name: Decision(f"direct:{name}", 0, lambda _s: True, (b,), StaticSelector())
            for name, b in self.backends.items()
        }
        self.redactor = SecretRedactor(secrets_of(config))
        self.dispatcher = Dispatcher(config.server, redactor=self.redactor)
        self.store = build_store(config)

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> Engine:
        return cls(load_config(Path(path)))

    def warmup(self) -> None:
        """Load lazy resources (language models, encoders) before serving."""
        for signal in self.signals.values():
            signal.warmup()

    async def aclose(self) -> None:
        for backend in self.backends.values():
            await backend.provider.aclose()
        await self.store.aclose()

    # ------------------------------------------------------------------ routing

    def plan(self, request: Request, trace: Trace) -> Plan:
        """Pick the decision and order its candidates; records signals and decision in ``trace``."""
        decision = self.decide(request, trace)
        return self._order(decision, request, trace)

    async def aplan(self, request: Request, trace: Trace) -> Plan:
        """``plan`` for the event loop.  A request over ``server.route_in_thread_bytes`` is
        routed whole in a worker thread; a selector with an async ``aorder`` (the learned
        one: it batches concurrent requests) is awaited, and one marked ``blocking`` runs
        in a worker thread: none stalls other requests.  Small requests stay inline (the
        hot path).  With a ``blocking`` signal configured (one that runs MiniLM), the
        decision is made in a worker thread too."""
        if request.size > self._route_in_thread_bytes:
            return await asyncio.to_thread(self.plan, request, trace)
        if self._decide_in_thread:
            decision = await asyncio.to_thread(self.decide, request, trace)
        else:
            decision = self.decide(request, trace)
        aorder = getattr(decision.selector, "aorder", None)
        if aorder is not None:
            ordered: list[Backend] = await aorder(decision.candidates, request, trace)
            trace.candidates = [b.name for b in ordered]
            return Plan(decision, ordered)
        if getattr(decision.selector, "blocking", False):
            return await asyncio.to_thread(self._order, decision, request, trace)
        return self._order(decision, request, trace)

    @staticmethod
    def _order(decision: Decision, request: Request, trace: Trace) -> Plan:
        ordered = decision.selector.order(decision.candidates, request, trace)
        trace.candidates = [b.name for b in ordered]
        return Plan(decision, ordered)

    def decide(self, request: Request, trace: Trace) -> Decision:
        """The decision for this request (direct model, or the first matching rule)."""
        model = request.model
        trace.requested_model = model
        direct = self._direct.get(model)
        if direct is not None:
            decision = direct
        else:
            decisions = self.profiles.get(model)
            if decisions is None:
                raise ModelNotFound(
                    f"The model {model!r} does not exist; use 'auto', a profile or one of "
                    f"{sorted(self.backends)} (GET /v1/models lists them)"
                )
            signals = SignalSet(self.signals, request)
            decision = self._match(decisions, signals)
            trace.signals = signals.values
        trace.decision = decision.name
        return decision

    @staticmethod
    def _match(decisions: list[Decision], signals: SignalSet) -> Decision:
        for decision in decisions:
            if decision.predicate(signals):
                return decision
        raise RoutingError("no decision matched this request and the config has no default")

    def route(self, request: Request, trace_id: str | None = None) -> Trace:
        """Dry run: the decision trace, with every configured signal computed, no model called."""
        trace = Trace(trace_id or new_trace_id())
        plan = self.plan(request, trace)
        if not plan.decision.name.startswith("direct:"):
            signals = SignalSet(self.signals, request)
            signals.values.update(trace.signals)
            trace.signals = {name: signals.get(name) for name in self.signals}
        if plan.candidates:
            trace.estimated_cost_usd = plan.candidates[0].estimate_cost(request)
        return trace

    # ------------------------------------------------------------------ calling

    def _chain(self, plan: Plan, final: Handler) -> Handler:
        handler = final
        for cls, options in reversed(plan.decision.plugins):
            handler = cls(handler, **options)
        return handler

    async def complete(self, request: Request, trace: Trace | None = None) -> tuple[JSON, Trace]:
        """Route and call, non-streaming: the OpenAI-shaped answer (``model`` = answering model)."""
        trace = trace or Trace(new_trace_id())
        plan = await self.aplan(request, trace)

        async def call(req: Request, tr: Trace) -> Any:
            answer = await self.dispatcher.complete(plan.candidates, req, tr)
            answer["model"] = tr.model
            tr.estimated_cost_usd = self.backends[tr.model].estimate_cost(req)
            return answer

        answer: JSON = await self._chain(plan, call)(request, trace)
        return answer, trace

    async def stream(
        self, request: Request, trace: Trace | None = None
    ) -> tuple[StreamStart, Trace]:
        """Route and open a stream; fails over until a first chunk arrives."""
        trace = trace or Trace(new_trace_id())
        plan = await self.aplan(request, trace)

        async def call(req: Request, tr: Trace) -> Any:
            backend, first, rest = await self.dispatcher.open_stream(plan.candidates, req, tr)
            tr.estimated_cost_usd = backend.estimate_cost(req)
            tr.outcome = "streaming"
            return StreamStart(backend, first, rest)

        start: StreamStart = await self._chain(plan, call)(request, trace)
        return start, trace


__all__ = ["LOOP_HEADER", "Engine", "Plan", "StreamStart", "new_trace_id"]
