"""``cascade``: the cheapest stage answers first; its answer is accepted when its confidence
clears the stage's threshold, else the next (stronger) stage is asked.

::

    decisions:
      - name: exam
        models: [llama3.1-8b, llama3.1-70b, llama3.1-405b]
        plan: {cascade: cascade/}                  # trained: polyroute train --plan cascade
      - name: by-hand
        models: [small, large]
        plan:
          cascade:
            stages: [small, large]
            accept: {logprob_mean: {gt: -0.35}}    # or {verify: {gt: -0.1}}

A first stage named ``selected`` is the model the decision's selector picks for the
request (a learned router's choice: route, then verify), escalating to the later stages
when its answer is unsure: ``stages: [selected, large]``.

Confidence is what a real server returns (``polyroute.plans.confidence``, the same
functions the workbench fits on): ``logprob_mean`` / ``logprob_min`` of the answer's
tokens (the stage is asked for ``logprobs``; they are removed from the client's answer
unless the client asked), or ``verify``: log P("Y") when the same model is asked whether
its answer is correct (one more short call).  The last stage is always accepted.

- (``top_logprobs: 1`` is asked with them: llama.cpp's server sends none without it.)
- Each stage's model, confidence, threshold, verdict and cost are trace events
  (``{"plan": "cascade", "stage": i, ...}``); ``x-polyroute-plan: cascade; calls=N``.
- A stage that fails (after the dispatcher's retries) escalates; when the last stage
  fails, the best answer an earlier stage gave is returned (trace: ``fallback``), else
  the error.  One deadline (``server.deadline_s``) covers every call of the plan.
- Streams: no stage is streamed (its answer may be rejected); the accepted answer is
  replayed as a well-formed stream.
- The cost is every call's, from the upstreams' usage (``cost_source: usage`` when each
  call reported it).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from polyroute.backends.backend import Backend
from polyroute.errors import ConfigError, UpstreamError
from polyroute.plans import artifact
from polyroute.plans.base import Plan
from polyroute.plans.common import MultiCall, Spend, answer_text, finish, sub_request
from polyroute.plans.confidence import STATISTICS, TOKEN_STATISTICS, of_answer, verify
from polyroute.types import JSON, Request, Trace

VERIFY_QUESTION = "Is the answer above correct? Reply with Y or N only."
#: a first stage named so is the decision selector's pick for the request
SELECTED = "selected"
#: fields a self-verification call does not inherit from the request
_NOT_VERIFIED = ("tools", "tool_choice", "response_format", "n", "logprobs", "top_logprobs")


@dataclass(frozen=True, slots=True)
class Stage:
    """One model of the chain; ``statistic`` and ``gt`` are None for the last stage."""

    model: str
    statistic: str | None = None
    gt: float | None = None


@dataclass(frozen=True, slots=True)
class CascadeSpec:
    stages: tuple[Stage, ...]
    #: ``config`` or the artifact's manifest path
    source: str = "config"


def _stage(raw: Any, where: str, last: bool) -> Stage:
    if not isinstance(raw, dict) or not isinstance(raw.get("model"), str):
        raise ConfigError(f"{where}: expected {{model: NAME, accept: ...}}")
    accept = raw.get("accept")
    if last:
        return Stage(raw["model"])
    if not isinstance(accept, dict):
        raise ConfigError(f"{where}.accept: expected {{statistic: NAME, gt: NUMBER}}")
    statistic, gt = accept.get("statistic"), accept.get("gt")
    if statistic not in STATISTICS:
        raise ConfigError(f"{where}.accept.statistic: expected one of {list(STATISTICS)}")
    if isinstance(gt, bool) or not isinstance(gt, int | float):
        raise ConfigError(f"{where}.accept.gt: expected a number")
    return Stage(raw["model"], statistic, float(gt))


def load_cascade(path: Path) -> CascadeSpec:
    """A trained cascade (``polyroute train --plan cascade``; :mod:`polyroute.plans.artifact`
    validates it and names the file and field of what is wrong)."""
    trained = artifact.load_cascade(path)
    stages = tuple(Stage(s.model, s.statistic, s.threshold) for s in trained.stages)
    return CascadeSpec(stages, trained.path)


def cascade_spec(value: Any, where: str, base_dir: Path, models: Sequence[str]) -> CascadeSpec:
    """``plan: {cascade: ...}`` of a decision: an artifact directory (relative to the
    config) or ``{stages: [NAME, ...], accept: {STATISTIC: {gt: NUMBER}}}``."""
    if isinstance(value, str):
        path = Path(value)
        spec = load_cascade(path if path.is_absolute() else base_dir / path)
    elif isinstance(value, dict):
        stages, accept = value.get("stages"), value.get("accept")
        unknown = sorted(set(value) - {"stages", "accept"})
        if unknown:
            raise ConfigError(f"{where}: unknown field {unknown[0]!r}; expected stages, accept")
        if not isinstance(stages, list) or len(stages) < 2:
            raise ConfigError(f"{where}.stages: expected two or more model names")
        if not isinstance(accept, dict) or len(accept) != 1:
            raise ConfigError(f"{where}.accept: expected one {{STATISTIC: {{gt: NUMBER}}}}")
        [(statistic, rule)] = accept.items()
        gt = rule.get("gt") if isinstance(rule, dict) else None
        raw = [{"model": m, "accept": {"statistic": statistic, "gt": gt}} for m in stages[:-1]] + [
            {"model": stages[-1]}
        ]
        spec = CascadeSpec(
            tuple(_stage(s, f"{where}", i == len(raw) - 1) for i, s in enumerate(raw))
        )
    else:
        raise ConfigError(f"{where}: expected an artifact directory or {{stages, accept}}")
    for i, stage in enumerate(spec.stages):
        if stage.model == SELECTED and i == 0 and len(spec.stages) > 1:
            continue  # the decision's selector picks it per request (route, then verify)
        if stage.model not in models:
            raise ConfigError(
                f"{where}: stage model {stage.model!r} is not one of the decision's models "
                f"{list(models)}"
            )
    return spec


def _chosen(stages: tuple[Stage, ...], plan: Plan) -> tuple[Stage, ...]:
    """The stages for this request: a first stage ``selected`` is the selector's pick
    (``plan.candidates[0]``, e.g. a learned router's), dropped when it is a later stage."""
    if not stages or stages[0].model != SELECTED:
        return stages
    picked = plan.candidates[0].name if plan.candidates else stages[1].model
    first = Stage(picked, stages[0].statistic, stages[0].gt)
    rest = stages[1:]
    return rest if any(s.model == picked for s in rest) else (first, *rest)


def _y_logprob(answer: JSON) -> float | None:
    """log P("Y") of a verification answer: the first token's, or its top alternatives'."""
    choices = answer.get("choices")
    first = choices[0] if isinstance(choices, list) and choices else None
    logprobs = first.get("logprobs") if isinstance(first, dict) else None
    content = logprobs.get("content") if isinstance(logprobs, dict) else None
    if not isinstance(content, list) or not content or not isinstance(content[0], dict):
        return None
    token = content[0]
    options = [token, *(t for t in token.get("top_logprobs") or [] if isinstance(t, dict))]
    for option in options:
        text = option.get("token")
        if isinstance(text, str) and text.strip().upper() in ("Y", "YES"):
            return verify(option.get("logprob"))
    return None


class CascadeExecutor(MultiCall):
    kind = "cascade"

    @staticmethod
    def spec(value: Any, where: str, base_dir: Path, models: Sequence[str]) -> CascadeSpec:
        return cascade_spec(value, where, base_dir, models)

    async def complete(self, plan: Plan, request: Request, trace: Trace) -> JSON:
        spec: CascadeSpec = plan.decision.plan_spec
        run = self.start(plan, request, trace)
        by_name, spend, deadline, base = run.by_name, run.spend, run.deadline, run.sent.body
        kept: tuple[JSON, str] | None = None  # the latest rejected answer, as a fallback
        stages = _chosen(spec.stages, plan)
        for i, stage in enumerate(stages):
            backend = by_name[stage.model]
            last = i == len(stages) - 1
            body = base
            if not last and stage.statistic in TOKEN_STATISTICS:
                # top_logprobs too: llama.cpp's server sends no logprobs without it
                body = {**base, "logprobs": True, "top_logprobs": base.get("top_logprobs") or 1}
            sent = sub_request(request, body)
            try:
                answer = await self.dispatcher.complete([backend], sent, trace, deadline)
            except UpstreamError as exc:
                trace.events.append(
                    {"plan": "cascade", "stage": i, "model": stage.model, "failed": exc.code}
                )
                if last and kept is not None:
                    trace.events.append({"plan": "cascade", "fallback": kept[1]})
                    return finish(kept[0], kept[1], request, trace, spend)
                if last:
                    spend.account(trace)
                    raise
                continue
            trace.plan_calls += 1
            cost = spend.add(backend, sent, answer)
            event: JSON = {"plan": "cascade", "stage": i, "model": stage.model, "cost_usd": cost}
            if last:
                trace.events.append({**event, "accepted": True})
                return finish(answer, stage.model, request, trace, spend)
            confidence = await self._confidence(
                stage, backend, sent, answer, trace=trace, spend=spend, deadline=deadline
            )
            accepted = confidence is not None and stage.gt is not None and confidence > stage.gt
            trace.events.append(
                {
                    **event,
                    "statistic": stage.statistic,
                    "confidence": confidence,
                    "threshold": stage.gt,
                    "accepted": accepted,
                }
            )
            if accepted:
                return finish(answer, stage.model, request, trace, spend)
            kept = (answer, stage.model)
        raise AssertionError("unreachable: the last stage always returns or raises")

    async def _confidence(
        self,
        stage: Stage,
        backend: Backend,
        sent: Request,
        answer: JSON,
        *,
        trace: Trace,
        spend: Spend,
        deadline: float,
    ) -> float | None:
        if stage.statistic in TOKEN_STATISTICS:
            return of_answer(str(stage.statistic), answer)
        messages = [
            *sent.messages,
            {"role": "assistant", "content": answer_text(answer)},
            {"role": "user", "content": VERIFY_QUESTION},
        ]
        body = {k: v for k, v in sent.body.items() if k not in _NOT_VERIFIED}
        body.update(messages=messages, max_tokens=1, temperature=0, logprobs=True, top_logprobs=5)
        body.pop("max_completion_tokens", None)
        question = sub_request(sent, body)
        try:
            verdict = await self.dispatcher.complete([backend], question, trace, deadline)
        except UpstreamError:
            return None  # no verdict: escalate
        trace.plan_calls += 1
        spend.add(backend, question, verdict)
        return _y_logprob(verdict)


__all__ = ["CascadeExecutor", "CascadeSpec", "Stage", "cascade_spec", "load_cascade"]
