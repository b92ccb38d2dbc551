"""``adaptive`` (ACAR-style): probe a cheap model N times; the agreement sigma of its samples
chooses one-, two- or three-model execution.

::

    decisions:
      - name: adaptive
        models: [small, medium, large]
        plan: {adaptive: {probe: small, samples: 3}}

- The probe answers ``samples`` times concurrently (at ``temperature`` 0.7 unless the
  client asked for a positive one: identical samples say nothing).  sigma is the share of the
  samples that agree with the most common one (:func:`polyroute.plans.common.normalised`).
- sigma ≥ ``unanimous`` (1.0): one model — the probe's majority answer.
- sigma ≥ ``majority`` (0.5): two models — the next model in ``models`` answers (the trace
  says whether it agreed with the probe's majority).
- below: three models — the next two answer; a vote of the probe's majority and theirs,
  ties to the strongest (the last listed).
- sigma, the branch taken and every call's cost are in the trace; one deadline covers the plan.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from polyroute.errors import ConfigError, UpstreamError
from polyroute.plans.base import Plan
from polyroute.plans.common import MultiCall, answer_text, finish, normalised, sub_request
from polyroute.plans.ensemble import ask_all
from polyroute.types import JSON, Request, Trace

PROBE_TEMPERATURE = 0.7


@dataclass(frozen=True, slots=True)
class AdaptiveSpec:
    probe: str
    samples: int
    #: the models after the probe, cheapest to strongest (the decision's order)
    escalation: tuple[str, ...]
    unanimous: float = 1.0
    majority: float = 0.5


def adaptive_spec(value: Any, where: str, models: Sequence[str]) -> AdaptiveSpec:
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: expected {{probe: NAME, samples: N}}")
    unknown = sorted(set(value) - {"probe", "samples", "unanimous", "majority"})
    if unknown:
        raise ConfigError(f"{where}: unknown field {unknown[0]!r}; expected probe, samples")
    probe = value.get("probe")
    if not isinstance(probe, str) or probe not in models:
        raise ConfigError(f"{where}.probe: expected one of the decision's models {list(models)}")
    samples = value.get("samples", 3)
    if isinstance(samples, bool) or not isinstance(samples, int) or not 2 <= samples <= 16:
        raise ConfigError(f"{where}.samples: expected an integer from 2 to 16")
    escalation = tuple(m for m in models if m != probe)
    if len(escalation) < 2:
        raise ConfigError(
            f"{where}: needs two models besides the probe (two- and three-model runs)"
        )
    unanimous, majority = value.get("unanimous", 1.0), value.get("majority", 0.5)
    for name, v in (("unanimous", unanimous), ("majority", majority)):
        if isinstance(v, bool) or not isinstance(v, int | float) or not 0 < v <= 1:
            raise ConfigError(f"{where}.{name}: expected a number in (0, 1]")
    if majority > unanimous:
        raise ConfigError(f"{where}.majority: must not exceed unanimous")
    return AdaptiveSpec(probe, samples, escalation, float(unanimous), float(majority))


def agreement(texts: Sequence[str]) -> tuple[str, float]:
    """The most common normalised answer and its share (sigma)."""
    forms = Counter(normalised(t) for t in texts)
    form, count = forms.most_common(1)[0]
    return form, count / len(texts)


class AdaptiveExecutor(MultiCall):
    kind = "adaptive"

    @staticmethod
    def spec(value: Any, where: str, base_dir: Path, models: Sequence[str]) -> AdaptiveSpec:
        return adaptive_spec(value, where, models)

    async def complete(self, plan: Plan, request: Request, trace: Trace) -> JSON:
        spec: AdaptiveSpec = plan.decision.plan_spec
        run = self.start(plan, request, trace)
        by_name, sent, spend, deadline = run.by_name, run.sent, run.spend, run.deadline
        base = sent.body
        temperature = base.get("temperature")
        hot = isinstance(temperature, int | float) and temperature > 0
        sampling = sub_request(request, base if hot else {**base, "temperature": PROBE_TEMPERATURE})
        probe = by_name[spec.probe]

        async def sample() -> JSON | None:
            try:
                return await self.dispatcher.complete([probe], sampling, trace, deadline)
            except UpstreamError:
                return None

        samples = [a for a in await asyncio.gather(*(sample() for _ in range(spec.samples))) if a]
        for answer in samples:
            trace.plan_calls += 1
            spend.add(probe, sampling, answer)
        texts = [answer_text(a) for a in samples]
        sigma = agreement(texts)[1] if samples else 0.0
        event: JSON = {
            "plan": "adaptive",
            "probe": probe.name,
            "samples": len(samples),
            "sigma": sigma,
        }
        if samples and sigma >= spec.unanimous:
            trace.events.append({**event, "models": 1})
            return finish(self._majority(samples), probe.name, request, trace, spend)
        width = 2 if samples and sigma >= spec.majority else 3
        others = [by_name[m] for m in spec.escalation[: width - 1]]
        got = [
            (b.name, a)
            for b, a in await ask_all(self.dispatcher, others, sent, trace, deadline)
            if a
        ]
        for name, answer in got:
            trace.plan_calls += 1
            spend.add(by_name[name], sent, answer)
        if not got:
            trace.events.append({**event, "models": width, "escalation": "failed"})
            if samples:  # the escalation failed: the probe's majority is still an answer
                return finish(self._majority(samples), probe.name, request, trace, spend)
            spend.account(trace)
            raise UpstreamError("the adaptive plan's probe and escalation all failed")
        pool = ([(probe.name, self._majority(samples))] if samples else []) + got
        forms = [normalised(answer_text(a)) for _, a in pool]
        if width == 2:  # the next model answers; the trace says whether it agreed
            name, answer = got[-1]
            event["agreed"] = bool(samples) and forms[0] == forms[-1]
        else:  # a vote; ties (and no majority at all) go to the strongest model asked
            votes = Counter(forms)
            best = max(votes.values())
            i = max(j for j, f in enumerate(forms) if votes[f] == best)
            name, answer = pool[i]
        trace.events.append({**event, "models": width, "answered_by": name})
        return finish(answer, name, request, trace, spend)

    @staticmethod
    def _majority(samples: Sequence[JSON]) -> JSON:
        form, _ = agreement([answer_text(a) for a in samples])
        return next(a for a in samples if normalised(answer_text(a)) == form)


__all__ = ["AdaptiveExecutor", "AdaptiveSpec", "agreement"]
