"""The plan contract: how a decision's chosen models answer one request.

Selection orders the candidates; a :class:`Plan` says how they are used.  Each plan
kind has one executor (``polyroute.plans.PLANS``): ``single`` (one model, failing
over down the ordered list) and ``cascade`` (``polyroute.plans.cascade``); ensembles
and adaptive execution plug in here as further kinds.  An executor answers whole
(``complete``: an OpenAI-shaped JSON answer) or streamed (``stream``: a :class:`StreamStart`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from polyroute.types import JSON, Decision, Request, Trace, UpstreamStream

if TYPE_CHECKING:
    from polyroute.backends.backend import Backend
    from polyroute.backends.failover import Dispatcher


@dataclass(slots=True)
class Plan:
    """The outcome of selection: the plan kind, the decision and the ordered candidates."""

    kind: str
    decision: Decision
    candidates: list[Backend]


@dataclass(slots=True)
class StreamStart:
    """A streamed answer that has produced its first chunk: ``model`` names the model the
    client is answered by (a backend, or the model of a cached answer)."""

    model: str
    first: JSON
    rest: UpstreamStream


class PlanExecutor(Protocol):
    """Runs plans of one kind.  Built once per engine as ``cls(dispatcher)``.

    ``spec`` validates and builds a decision's ``plan: {KIND: VALUE}`` at load (a
    ConfigError names ``where``); the result is ``Decision.plan_spec``.  An executor that
    ``accounts`` sets the trace's tokens and cost itself (a plan of several calls); else
    the engine accounts the answer's usage."""

    accounts: ClassVar[bool]

    def __init__(self, dispatcher: Dispatcher) -> None: ...

    @staticmethod
    def spec(value: Any, where: str, base_dir: Path, models: Sequence[str]) -> Any: ...

    async def complete(self, plan: Plan, request: Request, trace: Trace) -> JSON: ...

    async def stream(self, plan: Plan, request: Request, trace: Trace) -> StreamStart: ...


__all__ = ["Plan", "PlanExecutor", "StreamStart"]
