"""``single``: one model answers; on failure the next candidate does (the dispatcher's
retries, failover and circuit breakers)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

from polyroute.backends.failover import Dispatcher
from polyroute.errors import ConfigError
from polyroute.plans.base import Plan, StreamStart
from polyroute.types import JSON, Request, Trace


class SingleExecutor:
    accounts: ClassVar[bool] = False

    def __init__(self, dispatcher: Dispatcher) -> None:
        self.dispatcher = dispatcher

    @staticmethod
    def spec(value: Any, where: str, base_dir: Path, models: Sequence[str]) -> None:
        if value not in (None, {}, True):
            raise ConfigError(f"{where}: the single plan takes no options")

    async def complete(self, plan: Plan, request: Request, trace: Trace) -> JSON:
        answer = await self.dispatcher.complete(plan.candidates, request, trace)
        answer["model"] = trace.model
        backend = next(b for b in plan.candidates if b.name == trace.model)
        trace.estimated_cost_usd = backend.estimate_cost(request)
        return answer

    async def stream(self, plan: Plan, request: Request, trace: Trace) -> StreamStart:
        backend, first, rest = await self.dispatcher.open_stream(plan.candidates, request, trace)
        trace.estimated_cost_usd = backend.estimate_cost(request)
        trace.outcome = "streaming"
        return StreamStart(backend.name, first, rest)
