"""The plugin contract: a request phase before selection, a response phase after the answer.

A plugin is built once per config as ``cls(options, where, env)``; its ``Options`` (a
pydantic model) validate the config block, so a wrong key is a config error naming
it.  Per request the engine calls, in config order (global ``plugins:`` first, then
the decision's):

- ``on_request(ctx)`` -> ``None`` (pass; the plugin may have rewritten the request
  with ``ctx.rewrite``), :class:`Respond` (answer it: a cache hit), :class:`Reroute`
  (route it to another decision or model), or raise :class:`~polyroute.errors.Blocked`
  (refuse it).  Request plugins run before selection: a hit or a refusal costs no
  selector time and no upstream call.
- then, in reverse order (the onion), over the plugins whose request phase ran:
  ``on_answer(ctx, answer)`` for a whole answer, or ``on_stream(ctx)`` -> a
  :class:`ChunkTap` that sees (and may edit) every chunk of a streamed answer and may
  add chunks at its end.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

from polyroute.batching import EncoderBatchers
from polyroute.options import Options, validate_options
from polyroute.signals.base import BaseSignal
from polyroute.types import JSON, Request, SignalSource, Store, Trace


class PluginOptions(Options):
    pass


@dataclass(slots=True)
class PluginEnv:
    """What a plugin may use when it is built: the engine's shared parts."""

    base_dir: str = "."
    store: Store | None = None
    #: the built signals by name (a guard checks its signal exists at load)
    signal_names: frozenset[str] = frozenset()
    #: the set-valued signals and the members their sets may hold (``contains`` checks)
    signal_sets: Mapping[str, frozenset[str]] = field(default_factory=dict)
    #: the built signals themselves (an output guard computes them over the answer)
    signals: Mapping[str, BaseSignal] = field(default_factory=dict)
    #: the engine's encoder micro-batchers (the semantic cache embeds through them)
    batchers: EncoderBatchers | None = None


@dataclass(slots=True)
class Context:
    """One request on its way through the phases."""

    request: Request
    trace: Trace
    signals: SignalSource
    decision: str
    #: the request as the client sent it (signals and selection read this one)
    original: Request = field(init=False)
    #: per-plugin state for this request (a redaction's mapping, a cache's scope...)
    state: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.original = self.request

    @property
    def tenant(self) -> str:
        return self.trace.client

    def rewrite(self, body: JSON) -> None:
        """Replace the request's body (what the upstream will receive)."""
        r = self.request
        self.request = Request(body, r.endpoint, r.headers, r.raw_bytes)
        self.request.memo = r.memo


@dataclass(frozen=True, slots=True)
class Respond:
    """Answer the request without a model: ``body`` is an OpenAI-shaped answer."""

    body: JSON
    model: str
    outcome: str = "answered_by_plugin"


@dataclass(frozen=True, slots=True)
class Reroute:
    """Route the request to decision (or model) ``to`` instead."""

    to: str
    reason: str = ""


Verdict = Respond | Reroute | None


class ChunkTap(Protocol):
    """Watches one streamed answer: ``chunk`` may edit each chunk in place; ``end`` runs
    once after the upstream's last chunk (not on a cut stream) and returns chunks to add."""

    def chunk(self, chunk: JSON) -> None: ...

    async def end(self) -> list[JSON]: ...


class BasePlugin:
    """Subclasses set ``Options`` and override the phases they take part in."""

    Options: ClassVar[type[PluginOptions]] = PluginOptions
    #: the signals this plugin reads (computed before the request phase)
    signals: tuple[str, ...] = ()

    def __init__(self, options: Mapping[str, Any], where: str, env: PluginEnv) -> None:
        self.where = where
        self.options = validate_options(self.Options, options, where)
        self.setup(env)

    def setup(self, env: PluginEnv) -> None:
        """Check references and prepare state from ``self.options``."""

    def warmup(self) -> None:
        """Load heavy resources now (called once at server start-up, before ready)."""

    def reroute_targets(self) -> tuple[str, ...]:
        """Decisions or models this plugin may reroute to (checked at load)."""
        return ()

    async def on_request(self, ctx: Context) -> Verdict:
        return None

    def preview(self, ctx: Context) -> Verdict:
        """What the request phase would decide, with no side effect (the dry run:
        ``polyroute route``, ``/v1/route``): a guard refuses or reroutes here too; a
        plugin that rewrites or answers (pii, cache) previews as a pass."""
        return None

    async def on_answer(self, ctx: Context, answer: JSON) -> JSON:
        return answer

    def on_stream(self, ctx: Context) -> ChunkTap | None:
        return None

    async def aclose(self) -> None:
        """Release what the plugin holds (connections)."""


__all__ = [
    "BasePlugin",
    "ChunkTap",
    "Context",
    "PluginEnv",
    "PluginOptions",
    "Reroute",
    "Respond",
    "Verdict",
]
