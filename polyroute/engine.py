"""The routing engine: one request through typed phases.

    signals -> decision -> request plugins -> selection -> plan executor -> response plugins

1. **signals**: the signals a profile's decisions and plugins read are known at load.
   For the ones that run an encoder per request, the prompt is encoded once per
   encoder, batched with the other requests in flight (``polyroute.batching``), into
   the request's feature cache (``Request.memo``: every signal, the semantic cache and
   the MiniLM runtime's recent vectors share it); their heads then cost microseconds.
   Other costly signals run together in one worker-thread hop.  One that fails or runs
   past ``server.signal_timeout_s`` is unknown (``None``), never a failed request.
   Cheap signals are computed lazily, inline, when a rule reads them.
2. **decision**: the first rule (by priority) that holds.
3. **request plugins**: global ``plugins:`` then the decision's, in order; each may
   pass, rewrite the request, answer it (a cache hit), refuse it, or reroute it to
   another decision or model (whose plugins then run).
4. **selection** orders the decision's candidates into a :class:`~polyroute.plans.Plan`;
   its executor (one per plan kind) calls the models, with failover.
5. **response phase**: usage accounting (``polyroute.accounting``: the cost from the
   upstream's token counts), then the plugins whose request phase ran, innermost
   first, over the whole answer or every chunk of the stream.

Usable without the server::

    engine = Engine.from_file("polyroute.yaml")
    trace = engine.route(Request.chat("prove that sqrt(2) is irrational"))
    trace.decision, trace.candidates          # ('hard-math', ['large', 'small'])
    answer, trace = await engine.complete(Request.chat("hi"))
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from polyroute.accounting import (
    UsageTap,
    account,
    account_plugin_answer,
    usage_of,
    with_stream_usage,
)
from polyroute.backends.backend import Backend
from polyroute.backends.failover import Dispatcher
from polyroute.batching import EncoderBatchers
from polyroute.budget import Budgets
from polyroute.build import (
    build_backends,
    build_decisions,
    build_plugins,
    build_signals,
    build_store,
)
from polyroute.config import Config, DecisionConfig, load_config
from polyroute.embed import Encoder
from polyroute.errors import (
    ConfigError,
    FieldError,
    ModelNotFound,
    RequestError,
    RoutingError,
)
from polyroute.feedback import TraceLog
from polyroute.learning import bind_learners, build_trace_log, global_budgets, learn
from polyroute.plans import PLANS, Plan, PlanExecutor, StreamStart
from polyroute.plugins.base import BasePlugin, ChunkTap, Context, PluginEnv, Reroute, Respond
from polyroute.plugins.stream import replay, tapped
from polyroute.redact import SecretRedactor, secrets_of
from polyroute.selectors.static import StaticSelector
from polyroute.signals import BaseSignal, SignalSet
from polyroute.signals.neural import EncoderSignal
from polyroute.types import JSON, Decision, Request, SignalValue, Trace

# on every upstream request, with this engine's random id: a gateway refuses (508) a
# request carrying its own id, i.e. one it sent itself through a config loop
LOOP_HEADER = "x-polyroute-loop"
# a request rerouted more often than this (guards pointing at each other) is refused
MAX_REROUTES = 4

_LOG = logging.getLogger("polyroute.engine")


def new_trace_id() -> str:
    return os.urandom(8).hex()


class Engine:
    def __init__(self, config: Config) -> None:
        self.config = config
        server = config.server
        self.signals: dict[str, BaseSignal] = build_signals(config)
        for signal in self.signals.values():
            signal.text_max_chars = server.signal_text_max_chars
        self._route_in_thread_bytes = server.route_in_thread_bytes
        self._signal_timeout_s = server.signal_timeout_s
        self.instance_id = os.urandom(12).hex()
        self.backends: dict[str, Backend] = build_backends(config, {LOOP_HEADER: self.instance_id})
        self.store = build_store(config)
        #: the trace log behind ``POST /v1/feedback`` (``feedback:`` in the config)
        self.trace_log: TraceLog | None = build_trace_log(config)
        sets = {n: m for n, sig in self.signals.items() if (m := sig.members()) is not None}
        #: one micro-batcher per request-path encoder, shared with the plugins
        self.batchers = EncoderBatchers(server.encoder_threads)
        self.env = PluginEnv(
            config.base_dir, self.store, frozenset(self.signals), sets, self.signals,
            self.batchers,
        )  # fmt: skip
        self.plugins: tuple[BasePlugin, ...] = build_plugins(
            config.plugins, f"{config.source}: plugins", self.env
        )
        decisions = config.decisions or [
            DecisionConfig(
                name="default",
                models=[n for n, m in config.models.items() if m.kind == "chat"],
                select="cheapest",
            )
        ]
        self.profiles: dict[str, list[Decision]] = {
            "auto": build_decisions(config, decisions, self.backends, "decisions", env=self.env)
        }
        for name, profile in config.profiles.items():
            if name == "auto" or name in config.models:
                raise ConfigError(
                    f"{config.source}: profiles.{name}: "
                    "a profile may not be named 'auto' or like a model"
                )
            self.profiles[name] = build_decisions(
                config, profile.decisions, self.backends, f"profiles.{name}.decisions", env=self.env
            )
        every = global_budgets(config)
        self._direct = {
            name: Decision(
                f"direct:{name}", 0, lambda _s: True, (b,), StaticSelector(), budgets=every
            )
            for name, b in self.backends.items()
        }
        #: spend per budget and period, in the engine's store
        self.budgets = Budgets(self.store)
        self._check_reroutes()
        bind_learners(self.profiles, self.store, self.instance_id)
        # per profile: the signals that run an encoder, prefetched in one thread hop
        global_signals = {n for p in self.plugins for n in p.signals}
        self._prefetch: dict[str, tuple[str, ...]] = {
            name: tuple(
                sorted(
                    n
                    for n in global_signals.union(*(d.signals for d in profile))
                    if self.signals[n].blocking
                )
            )
            for name, profile in self.profiles.items()
        }
        self.redactor = SecretRedactor(secrets_of(config))
        self.dispatcher = Dispatcher(server, redactor=self.redactor)
        self.executors: dict[str, PlanExecutor] = {
            kind: PLANS.get(kind)(self.dispatcher) for kind in PLANS.names()
        }

    def learn(self, record: JSON, score: float) -> bool:
        """Feedback (``score`` in [0, 1]) for a served request's trace-log ``record``: the
        selector of its decision learns from it when it can (``select: {type: bandit}``)."""
        return learn(self.profiles, record, score)

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> Engine:
        return cls(load_config(Path(path)))

    def _check_reroutes(self) -> None:
        """Every reroute target names a decision of each profile the plugin serves, or a model."""
        for profile, decisions in self.profiles.items():
            names = {d.name for d in decisions} | set(self.backends)
            owners = [(p, "plugins") for p in self.plugins]
            owners += [(p, f"decision {d.name!r}") for d in decisions for p in d.plugins]
            for plugin, owner in owners:
                for target in plugin.reroute_targets():
                    if target not in names:
                        raise ConfigError(
                            f"{plugin.where}.to: {target!r} is neither a decision of profile "
                            f"{profile!r} ({owner}) nor a model; expected one of {sorted(names)}"
                        )

    def warmup(self) -> None:
        """Load lazy resources (language models, encoders) before serving."""
        for signal in self.signals.values():
            signal.warmup()
        for plugin in plugins_of(self).values():
            plugin.warmup()

    async def aclose(self) -> None:
        for backend in self.backends.values():
            await backend.provider.aclose()
        for plugin in plugins_of(self).values():
            await plugin.aclose()
        await self.store.aclose()
        if self.trace_log is not None:
            await self.trace_log.store.aclose()
        self.batchers.close()

    # ------------------------------------------------------------------ phases 1-2

    def _profile(self, request: Request) -> tuple[str, list[Decision] | None]:
        model = request.model
        if model in self._direct:
            return model, None
        decisions = self.profiles.get(model)
        if decisions is None:
            raise ModelNotFound(
                f"The model {model!r} does not exist; use 'auto', a profile or one of "
                f"{sorted(self.backends)} (GET /v1/models lists them)"
            )
        return model, decisions

    def decide(self, request: Request, trace: Trace) -> tuple[Decision, SignalSet]:
        """The decision for this request (direct model, or the first matching rule),
        signals computed inline as rules read them."""
        model, decisions = self._profile(request)
        trace.requested_model = model
        signals = SignalSet(self.signals, request)
        decision = self._direct[model] if decisions is None else self._match(decisions, signals)
        trace.signals = signals.values
        trace.decision = decision.name
        return decision, signals

    async def adecide(self, request: Request, trace: Trace) -> tuple[Decision, SignalSet]:
        """``decide`` for the event loop: a request over ``server.route_in_thread_bytes`` is
        decided whole in a worker thread; else the profile's encoder signals are prefetched
        in one worker-thread hop (bounded by ``server.signal_timeout_s``) and the rules run
        inline."""
        if request.size > self._route_in_thread_bytes:
            return await asyncio.to_thread(self.decide, request, trace)
        model, decisions = self._profile(request)
        signals = SignalSet(self.signals, request)
        if decisions is not None:
            names = self._prefetch[model]
            if names:
                signals.values.update(await self._compute(request, names))
        trace.requested_model = model
        decision = self._direct[model] if decisions is None else self._match(decisions, signals)
        trace.signals = signals.values
        trace.decision = decision.name
        return decision, signals

    async def _compute(self, request: Request, names: Sequence[str]) -> dict[str, SignalValue]:
        def run() -> dict[str, SignalValue]:
            return {name: self.signals[name].compute(request) for name in names}

        try:
            async with asyncio.timeout(self._signal_timeout_s):
                if await self._embed(request, names):
                    return run()  # every vector is in the memo: the heads cost microseconds
                return await asyncio.to_thread(run)
        except TimeoutError:
            _LOG.warning(
                "signals %s took over %.3g s: unknown for this request",
                ", ".join(names),
                self._signal_timeout_s,
            )
            return dict.fromkeys(names)

    async def _embed(self, request: Request, names: Sequence[str]) -> bool:
        """Encode what the encoder signals among ``names`` will read, batched with the
        requests in flight, into the request's feature cache (a text already there is not
        encoded again).  True when no signal among ``names`` has work left beyond its
        head (each is an encoder signal whose encoder is loaded)."""
        wanted: dict[tuple[str, str], Encoder] = {}
        cheap = True
        for name in names:
            signal = self.signals[name]
            encoder: Encoder | None = None
            texts: tuple[str, ...] = ()
            if isinstance(signal, EncoderSignal) and signal.encoder is not None:
                encoder, texts = signal.encoder, signal.encoder_texts(request)
            if encoder is None or not texts:
                cheap = False
                continue
            for text in texts:
                wanted.setdefault((encoder.id, text), encoder)
        if wanted:
            await asyncio.gather(
                *(self.batchers.embed(request, enc, text) for (_, text), enc in wanted.items())
            )
        return cheap

    @staticmethod
    def _match(decisions: list[Decision], signals: SignalSet) -> Decision:
        for decision in decisions:
            if decision.predicate(signals):
                return decision
        raise RoutingError("no decision matched this request and the config has no default")

    # ------------------------------------------------------------------ phase 3

    async def _request_phase(
        self, ctx: Context, decision: Decision, ran: list[BasePlugin]
    ) -> tuple[Decision, Respond | None]:
        """Run the global plugins, then the decision's; follow reroutes."""
        chain: tuple[BasePlugin, ...] = (*self.plugins, *decision.plugins)
        for _ in range(MAX_REROUTES + 1):
            for plugin in chain:
                verdict = await plugin.on_request(ctx)
                if verdict is None:
                    ran.append(plugin)
                    continue
                if isinstance(verdict, Respond):
                    return decision, verdict
                decision = self._reroute(ctx, verdict)
                chain = decision.plugins
                break
            else:
                return decision, None
        raise RoutingError(
            f"the request was rerouted more than {MAX_REROUTES} times (plugins reroute in a loop)"
        )

    def _reroute(self, ctx: Context, verdict: Reroute) -> Decision:
        _, decisions = self._profile(ctx.original)
        target = next((d for d in decisions or () if d.name == verdict.to), None)
        if target is None:
            target = self._direct[verdict.to]  # checked at load: a decision or a model
        ctx.trace.decision = ctx.decision = target.name
        return target

    # ------------------------------------------------------------------ phase 4

    def _order(self, decision: Decision, request: Request, trace: Trace) -> Plan:
        ordered = decision.selector.order(decision.candidates, request, trace)
        return self._plan(decision, request, trace, ordered)

    @staticmethod
    def _plan(decision: Decision, request: Request, trace: Trace, ordered: list[Backend]) -> Plan:
        """The plan over ``ordered``; a sticky decision puts the model that answered the
        conversation's previous turn first (when it is a candidate)."""
        if decision.sticky and request.prefer is not None:
            first = [b for b in ordered if b.name == request.prefer]
            if first:
                ordered = first + [b for b in ordered if b.name != request.prefer]
                trace.events.append({"session": "sticky", "model": request.prefer})
        trace.candidates = [b.name for b in ordered]
        return Plan(decision.plan, decision, ordered)

    async def aselect(self, decision: Decision, request: Request, trace: Trace) -> Plan:
        """Selection on the event loop: a selector with an async ``aorder`` (the learned
        one batches concurrent requests) is awaited; one marked ``blocking``, or any for a
        request over ``server.route_in_thread_bytes``, runs in a worker thread."""
        aorder = getattr(decision.selector, "aorder", None)
        if aorder is not None and request.size <= self._route_in_thread_bytes:
            ordered: list[Backend] = await aorder(decision.candidates, request, trace)
            return self._plan(decision, request, trace, ordered)
        if request.size > self._route_in_thread_bytes or getattr(
            decision.selector, "blocking", False
        ):
            return await asyncio.to_thread(self._order, decision, request, trace)
        return self._order(decision, request, trace)

    async def aplan(self, request: Request, trace: Trace) -> Plan:
        """Decision and selection on the event loop (no plugins, no model called)."""
        decision, _ = await self.adecide(request, trace)
        return await self.aselect(decision, request, trace)

    async def embed(self, body: JSON, trace: Trace) -> JSON:
        """``POST /v1/embeddings``: the named embedding model (``kind: embedding``), with
        retries; embeddings are not routed, so ``auto`` or a chat model is a 400."""
        name = body.get("model")
        kinds = {n: m.kind for n, m in self.config.models.items()}
        embedding = sorted(n for n, k in kinds.items() if k == "embedding")
        trace.requested_model = name if isinstance(name, str) else ""
        if not isinstance(name, str) or name not in kinds:
            if name in self.profiles:
                raise FieldError(
                    "model",
                    f"embeddings are not routed: name an embedding model, one of {embedding}",
                )
            raise ModelNotFound(f"The model {name!r} does not exist; embedding models: {embedding}")
        if kinds[name] != "embedding":
            raise FieldError(
                "model",
                f"{name!r} is a chat model; embedding models (kind: embedding): {embedding}",
            )
        backend = self.backends[name]
        trace.decision = f"direct:{name}"
        trace.candidates = [name]
        answer = await self.dispatcher.embed([backend], body, trace)
        answer["model"] = name
        usage = answer.get("usage")
        tokens = usage.get("prompt_tokens") if isinstance(usage, dict) else None
        if isinstance(tokens, int) and not isinstance(tokens, bool):
            account(trace, backend, (tokens, 0))
        else:
            account(trace, backend, None)
        return answer

    def plan(self, request: Request, trace: Trace) -> Plan:
        """Decision and selection, synchronously (the dry run; no plugins)."""
        decision, _ = self.decide(request, trace)
        return self._order(decision, request, trace)

    def route(self, request: Request, trace_id: str | None = None) -> Trace:
        """Dry run: the decision trace, with every configured signal computed, no model called.

        Guards are previewed: a refusal sets ``trace.outcome`` to ``refused:CODE`` (no
        candidates), a reroute moves ``trace.decision``; ``trace.events`` says which
        signals fired.  Plugins that rewrite or answer (pii, cache) are not run."""
        trace = Trace(trace_id or new_trace_id())
        matched, signals = self.decide(request, trace)
        decision: Decision | None = None
        try:
            decision = self._preview(Context(request, trace, signals, matched.name), matched)
        except RequestError as exc:
            trace.outcome = f"refused:{exc.code}"
        if decision is not None:
            plan = self._order(decision, request, trace)
            if plan.candidates:
                trace.estimated_cost_usd = plan.candidates[0].estimate_cost(request)
        if not trace.decision.startswith("direct:"):
            signals.values.update(trace.signals)
            trace.signals = {name: signals.get(name) for name in self.signals}
        return trace

    def _preview(self, ctx: Context, decision: Decision) -> Decision:
        chain: tuple[BasePlugin, ...] = (*self.plugins, *decision.plugins)
        for _ in range(MAX_REROUTES + 1):
            for plugin in chain:
                verdict = plugin.preview(ctx)
                if isinstance(verdict, Reroute):
                    decision = self._reroute(ctx, verdict)
                    chain = decision.plugins
                    break
            else:
                return decision
        raise RoutingError(
            f"the request was rerouted more than {MAX_REROUTES} times (plugins reroute in a loop)"
        )

    # ------------------------------------------------------------------ the whole request

    async def _front(
        self, request: Request, trace: Trace
    ) -> tuple[Context | None, list[BasePlugin], Plan | Respond]:
        """Phases 1-4: the context (None when no plugin takes part: the hot path), the
        plugins whose request phase ran, and a plan (or a plugin's answer)."""
        decision, signals = await self.adecide(request, trace)
        if not (self.plugins or decision.plugins):
            if decision.budgets:
                await self.budgets.check(decision.budgets, trace)
            return None, [], await self.aselect(decision, request, trace)
        ctx = Context(request, trace, signals, decision.name)
        ran: list[BasePlugin] = []
        decision, answered = await self._request_phase(ctx, decision, ran)
        if answered is not None:
            trace.model = answered.model
            trace.outcome = answered.outcome
            return ctx, ran, answered
        if decision.budgets:
            await self.budgets.check(decision.budgets, trace)
        return ctx, ran, await self.aselect(decision, ctx.original, trace)

    async def complete(self, request: Request, trace: Trace | None = None) -> tuple[JSON, Trace]:
        """Route and call, non-streaming: the OpenAI-shaped answer (``model`` = answering model)."""
        trace = trace or Trace(new_trace_id())
        ctx, ran, planned = await self._front(request, trace)
        if isinstance(planned, Respond):
            answer: JSON = {**planned.body, "model": planned.model}
            account_plugin_answer(trace)
        else:
            sent = request if ctx is None else _native_checked(ctx.request, ran)
            executor = self.executors[planned.kind]
            answer = await executor.complete(planned, sent, trace)
            if not executor.accounts:
                account(trace, self.backends[trace.model], usage_of(answer))
            if planned.decision.budgets:
                await self.budgets.charge(planned.decision.budgets, trace)
        if ctx is not None:
            for plugin in reversed(ran):
                answer = await plugin.on_answer(ctx, answer)
        choices = answer.get("choices")
        if isinstance(choices, list) and choices and isinstance(choices[0], dict):
            trace.finish_reason = str(choices[0].get("finish_reason") or "")
        return answer, trace

    async def stream(
        self, request: Request, trace: Trace | None = None
    ) -> tuple[StreamStart, Trace]:
        """Route and open a stream; fails over until a first chunk arrives.  The response
        plugins watch every chunk; a plugin's answer is replayed as a stream."""
        trace = trace or Trace(new_trace_id())
        ctx, ran, planned = await self._front(request, trace)
        taps: list[ChunkTap] = []
        if isinstance(planned, Respond):
            start = replay(planned.body, request.endpoint, planned.model)
            account_plugin_answer(trace)
        else:
            sent = request if ctx is None else _native_checked(ctx.request, ran)
            executor = self.executors[planned.kind]
            if executor.accounts:  # a plan of several calls: its answer is replayed whole
                start = await executor.stream(planned, sent, trace)
            else:
                upstream, strip = with_stream_usage(sent)
                start = await executor.stream(planned, upstream, trace)
                account(trace, self.backends[trace.model], None)  # until the usage arrives
                taps.append(UsageTap(trace, self.backends[trace.model], strip))
            if planned.decision.budgets:  # after the usage tap: the cost is known then
                taps.append(self.budgets.tap(planned.decision.budgets, trace))
        if ctx is not None:
            taps += [t for p in reversed(ran) if (t := p.on_stream(ctx)) is not None]
        try:
            return tapped(start, taps), trace
        except BaseException:
            await start.rest.aclose()
            raise


def _edits_answers(plugin: BasePlugin) -> bool:
    cls = type(plugin)
    return cls.on_answer is not BasePlugin.on_answer or cls.on_stream is not BasePlugin.on_stream


def _native_checked(request: Request, ran: Sequence[BasePlugin]) -> Request:
    """``request``, without its native wire body when a plugin that ran may edit the
    answer (plugins edit the chat view; a native answer would bypass them).  A plugin
    that rewrote the body already made a request without one (``Context.rewrite``)."""
    if request.native is not None and any(_edits_answers(p) for p in ran):
        request.native = None
    return request


def plugins_of(engine: Engine) -> Mapping[int, BasePlugin]:
    """Every plugin instance of ``engine`` (global and per decision), once each."""
    found = {id(p): p for p in engine.plugins}
    for decisions in engine.profiles.values():
        found.update((id(p), p) for d in decisions for p in d.plugins)
    return found


__all__ = ["LOOP_HEADER", "Engine", "Plan", "StreamStart", "new_trace_id"]
