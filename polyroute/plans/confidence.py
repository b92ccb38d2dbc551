"""How sure a model is of its answer: one function per statistic, shared by training and
serving.

The workbench fits a cascade's thresholds on recorded confidences (``logprobs: {model:
[token logprobs]}``, ``verify_logprob: {model: log P("Y")}``); the gateway computes the
same statistic, with the same function, from a live upstream's answer (the OpenAI
``choices[0].logprobs.content[*].logprob`` it asked for, or the log-probability of
"Y" in a short self-verification call).  Every statistic is a float where larger means
surer; an answer without the data it needs has none (``None``: the stage escalates).

| statistic | from | value |
|---|---|---|
| ``logprob_mean`` | the answer's token logprobs | their mean (a one-token answer: its logprob) |
| ``logprob_min`` | the answer's token logprobs | the least sure token's logprob |
| ``verify`` | a self-verification's log P("Y") | that log-probability |
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any, Literal

Statistic = Literal["logprob_mean", "logprob_min", "verify"]
STATISTICS: tuple[Statistic, ...] = ("logprob_mean", "logprob_min", "verify")
#: the statistics read from the answer's own token logprobs (the others need a call)
TOKEN_STATISTICS: frozenset[str] = frozenset({"logprob_mean", "logprob_min"})


def _finite(values: Sequence[Any]) -> list[float]:
    out = []
    for v in values:
        if isinstance(v, bool) or not isinstance(v, int | float):
            return []
        if not math.isfinite(v):
            return []
        out.append(float(v))
    return out


def logprob_mean(token_logprobs: Sequence[Any]) -> float | None:
    values = _finite(token_logprobs)
    return sum(values) / len(values) if values else None


def logprob_min(token_logprobs: Sequence[Any]) -> float | None:
    values = _finite(token_logprobs)
    return min(values) if values else None


def verify(log_p_yes: Any) -> float | None:
    values = _finite([log_p_yes])
    return values[0] if values else None


TOKEN_FUNCTIONS: dict[str, Callable[[Sequence[Any]], float | None]] = {
    "logprob_mean": logprob_mean,
    "logprob_min": logprob_min,
}


def token_logprobs(answer: dict[str, Any]) -> list[float] | None:
    """The token logprobs of an OpenAI chat answer's first choice (``logprobs.content``),
    or ``None`` when the upstream sent none."""
    choices = answer.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        return None
    logprobs = choices[0].get("logprobs")
    content = logprobs.get("content") if isinstance(logprobs, dict) else None
    if not isinstance(content, list) or not content:
        return None
    values = [t.get("logprob") for t in content if isinstance(t, dict)]
    numbers = _finite(values)
    return numbers if numbers and len(numbers) == len(content) else None


def of_answer(statistic: str, answer: dict[str, Any]) -> float | None:
    """A token statistic of a live answer (``None`` when the answer carries no logprobs)."""
    values = token_logprobs(answer)
    return None if values is None else TOKEN_FUNCTIONS[statistic](values)


__all__ = [
    "STATISTICS",
    "TOKEN_FUNCTIONS",
    "TOKEN_STATISTICS",
    "Statistic",
    "logprob_mean",
    "logprob_min",
    "of_answer",
    "token_logprobs",
    "verify",
]
