"""``ensemble``: several models answer the same request at once; the answers are merged.

::

    decisions:
      - name: vote
        models: [a, b, c]
        plan: {ensemble: {aggregate: vote}}                 # majority of the answers
      - name: merged
        models: [a, b, large]
        plan: {ensemble: {aggregate: merge, merger: large}} # large writes the final answer

- ``vote`` (discrete answers: a letter, a number, a label): answers are compared in
  :func:`polyroute.plans.common.normalised` form; the most common wins, ties go to the
  model listed first; the client gets the answer of the first model that gave it.
  ``agreement`` (the winner's share of the answers) is in the trace.
- ``merge`` (open answers): the members (the decision's models but the merger) answer
  concurrently, then ``merger`` is asked for one final answer given the request and
  their answers (TCAndon-Router / ORCH style aggregation).
- ``models:`` in the plan picks members among the decision's models (default: all).
- A member that fails is left out (the trace says so); with none left, the error.  One
  deadline covers the plan; the cost is every call's; streams get the final answer
  replayed (no member is streamed).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from polyroute.backends.backend import Backend
from polyroute.backends.failover import Dispatcher
from polyroute.errors import ConfigError, UpstreamError
from polyroute.plans.base import Plan
from polyroute.plans.common import MultiCall, answer_text, finish, normalised, sub_request
from polyroute.types import JSON, Request, Trace

#: what the merger is told (a user turn after the conversation; the answers follow)
MERGE_INSTRUCTION = (
    "Several assistants answered the request above. Their answers follow. Write the single "
    "best final answer to the request: keep what is correct, fix what is wrong, and answer "
    "directly, without mentioning the assistants."
)
#: characters of an answer shown in the trace
TRACE_CHARS = 80


@dataclass(frozen=True, slots=True)
class EnsembleSpec:
    aggregate: Literal["vote", "merge"]
    members: tuple[str, ...]
    merger: str | None = None


def ensemble_spec(value: Any, where: str, models: Sequence[str]) -> EnsembleSpec:
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: expected {{aggregate: vote|merge, merger: NAME, models}}")
    unknown = sorted(set(value) - {"aggregate", "merger", "models"})
    if unknown:
        raise ConfigError(
            f"{where}: unknown field {unknown[0]!r}; expected aggregate, merger, models"
        )
    aggregate = value.get("aggregate", "vote")
    if aggregate not in ("vote", "merge"):
        raise ConfigError(f"{where}.aggregate: expected vote or merge, got {aggregate!r}")
    members = value.get("models", list(models))
    if not isinstance(members, list) or not all(isinstance(m, str) for m in members):
        raise ConfigError(f"{where}.models: expected a list of model names")
    for name in members:
        if name not in models:
            raise ConfigError(f"{where}.models: {name!r} is not one of the decision's models")
    merger = value.get("merger")
    if aggregate == "merge":
        if not isinstance(merger, str) or merger not in models:
            raise ConfigError(
                f"{where}.merger: expected one of the decision's models {list(models)}"
            )
        members = [m for m in members if m != merger]
    elif merger is not None:
        raise ConfigError(f"{where}.merger: only for aggregate: merge")
    if len(members) < (1 if aggregate == "merge" else 2):
        raise ConfigError(f"{where}.models: an ensemble needs at least two answers")
    return EnsembleSpec(aggregate, tuple(members), merger)


async def ask_all(
    dispatcher: Dispatcher,
    backends: Sequence[Backend],
    request: Request,
    trace: Trace,
    deadline: float,
) -> list[tuple[Backend, JSON | None]]:
    """Every backend's answer to ``request`` concurrently (None for one that failed)."""

    async def one(backend: Backend) -> JSON | None:
        try:
            return await dispatcher.complete([backend], request, trace, deadline)
        except UpstreamError as exc:
            trace.events.append({"plan": trace.plan, "model": backend.name, "failed": exc.code})
            return None

    answers = await asyncio.gather(*(one(b) for b in backends))
    return list(zip(backends, answers, strict=True))


def vote(answers: Sequence[tuple[str, JSON]]) -> tuple[str, JSON, float, dict[str, int]]:
    """The majority answer: (its model, the answer, agreement, votes per normalised text);
    ties go to the answer listed first."""
    forms = [normalised(answer_text(a)) for _, a in answers]
    votes = Counter(forms)
    best = max(votes.values())
    winner = next(f for f in forms if votes[f] == best)
    model, answer = answers[forms.index(winner)]
    shown = {form[:TRACE_CHARS]: count for form, count in votes.items()}
    return model, answer, best / len(forms), shown


class EnsembleExecutor(MultiCall):
    kind = "ensemble"

    @staticmethod
    def spec(value: Any, where: str, base_dir: Path, models: Sequence[str]) -> EnsembleSpec:
        return ensemble_spec(value, where, models)

    async def complete(self, plan: Plan, request: Request, trace: Trace) -> JSON:
        spec: EnsembleSpec = plan.decision.plan_spec
        run = self.start(plan, request, trace)
        by_name, sent, spend = run.by_name, run.sent, run.spend
        members = [by_name[m] for m in spec.members]
        asked = await ask_all(self.dispatcher, members, sent, trace, run.deadline)
        got = [(b.name, a) for b, a in asked if a is not None]
        for name, answer in got:
            trace.plan_calls += 1
            spend.add(by_name[name], sent, answer)
        if not got:
            spend.account(trace)
            raise UpstreamError("every member of the ensemble failed")
        if spec.aggregate == "vote":
            model, answer, agreement, votes = vote(got)
            trace.events.append(
                {"plan": "ensemble", "aggregate": "vote", "votes": votes, "agreement": agreement,
                 "answered_by": model}
            )  # fmt: skip
            return finish(answer, model, request, trace, spend)
        assert spec.merger is not None
        merger = by_name[spec.merger]
        shown = "\n\n".join(f"Answer {i + 1}:\n{answer_text(a)}" for i, (_, a) in enumerate(got))
        ask = {"role": "user", "content": f"{MERGE_INSTRUCTION}\n\n{shown}"}
        merge = sub_request(sent, {**sent.body, "messages": [*sent.messages, ask]})
        answer = await self.dispatcher.complete([merger], merge, trace, run.deadline)
        trace.plan_calls += 1
        spend.add(merger, merge, answer)
        trace.events.append(
            {"plan": "ensemble", "aggregate": "merge", "members": [n for n, _ in got],
             "merger": merger.name}
        )  # fmt: skip
        return finish(answer, merger.name, request, trace, spend)


__all__ = ["EnsembleExecutor", "EnsembleSpec", "ask_all", "vote"]
