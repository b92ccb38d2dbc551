"""What the plan executors share: :class:`MultiCall` (the base of the executors whose plan
makes several calls: one deadline, the spend, the final answer replayed as a stream),
sub-requests, answers' text and the normalised form votes compare."""

from __future__ import annotations

import re
import time
import unicodedata
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from polyroute.backends.backend import Backend
from polyroute.plans.base import Plan, StreamStart
from polyroute.plugins.stream import replay
from polyroute.tokens import request_cost_usd
from polyroute.types import JSON, Request, Trace

if TYPE_CHECKING:
    from polyroute.backends.failover import Dispatcher

_SPACE = re.compile(r"\s+")
_EDGE = re.compile(r"^[\s\"'`*_.,;:!?()\[\]]+|[\s\"'`*_.,;:!?()\[\]]+$")


def sub_request(request: Request, body: JSON) -> Request:
    """``request`` with another body (the plan's own call), sharing its feature cache."""
    sub = Request(body, request.endpoint, request.headers, request.raw_bytes)
    sub.memo = request.memo
    return sub


def strip_logprobs(answer: JSON) -> None:
    """Remove the logprobs a plan asked for (the client did not)."""
    for choice in answer.get("choices") or []:
        if isinstance(choice, dict) and "logprobs" in choice:
            choice["logprobs"] = None


def answer_text(answer: JSON) -> str:
    """The first choice's text (chat ``message.content`` or completions ``text``)."""
    choices = answer.get("choices")
    first = choices[0] if isinstance(choices, list) and choices else {}
    if not isinstance(first, dict):
        return ""
    message = first.get("message")
    content = message.get("content") if isinstance(message, dict) else first.get("text")
    return content if isinstance(content, str) else ""


def normalised(text: str) -> str:
    """The form two answers are compared in (votes, agreement): Unicode NFKC, case-folded,
    whitespace collapsed, surrounding quotes, markup and punctuation dropped ("B." and
    " b" agree; "Paris" and "paris, France" do not)."""
    text = unicodedata.normalize("NFKC", text).casefold()
    return _EDGE.sub("", _SPACE.sub(" ", text))


class Spend:
    """Tokens and USD over a plan's calls, from each upstream's usage (else estimates)."""

    def __init__(self) -> None:
        self.input_tokens = self.output_tokens = 0
        self.usd = self.estimated_usd = 0.0
        self.all_usage = True

    def add(self, backend: Backend, request: Request, answer: JSON) -> float:
        """Count one call's answer; returns its cost."""
        estimate = backend.estimate_cost(request)
        self.estimated_usd += estimate
        usage = answer.get("usage")
        tokens = (
            (usage.get("prompt_tokens"), usage.get("completion_tokens"))
            if isinstance(usage, dict)
            else (None, None)
        )
        if all(isinstance(t, int) and not isinstance(t, bool) for t in tokens):
            pin, pout = int(tokens[0] or 0), int(tokens[1] or 0)
            self.input_tokens += pin
            self.output_tokens += pout
            cost = request_cost_usd(
                pin, pout, backend.input_price_per_mtok, backend.output_price_per_mtok
            )
        else:
            self.all_usage = False
            cost = estimate
        self.usd += cost
        return cost

    def account(self, trace: Trace) -> None:
        trace.input_tokens, trace.output_tokens = self.input_tokens, self.output_tokens
        trace.cost_usd = self.usd
        trace.estimated_cost_usd = self.estimated_usd
        trace.cost_source = "usage" if self.all_usage else "estimate"


@dataclass(slots=True)
class Run:
    """One plan's request: its models by name, the deadline every call shares, the spend,
    and the request the calls start from (the client's, never streamed)."""

    by_name: dict[str, Backend]
    deadline: float
    spend: Spend
    sent: Request


def finish(answer: JSON, model: str, request: Request, trace: Trace, spend: Spend) -> JSON:
    """The client's answer: the answering model named, the plan's logprobs dropped (unless
    the client asked), the trace's cost set from every call."""
    if request.body.get("logprobs") is not True:
        strip_logprobs(answer)
    answer["model"] = model
    trace.model = model
    spend.account(trace)
    return answer


class MultiCall:
    """Base of the executors whose plan makes several calls (``accounts``: they set the
    trace's tokens and cost from every call; a stream replays the final answer, since an
    answer that may be rejected is never streamed)."""

    accounts: ClassVar[bool] = True
    kind: ClassVar[str] = ""

    def __init__(self, dispatcher: Dispatcher) -> None:
        self.dispatcher = dispatcher

    def start(self, plan: Plan, request: Request, trace: Trace) -> Run:
        trace.plan, trace.plan_calls = self.kind, 0
        body = {k: v for k, v in request.body.items() if k not in ("stream", "stream_options")}
        return Run(
            {b.name: b for b in plan.decision.candidates},
            time.monotonic() + self.dispatcher.server.deadline_s,
            Spend(),
            sub_request(request, body),
        )

    async def complete(self, plan: Plan, request: Request, trace: Trace) -> JSON:
        raise NotImplementedError

    async def stream(self, plan: Plan, request: Request, trace: Trace) -> StreamStart:
        answer = await self.complete(plan, request, trace)
        options = request.body.get("stream_options")
        if not (isinstance(options, dict) and options.get("include_usage") is True):
            answer.pop("usage", None)  # usage only when the client asked for it
        trace.outcome = "streaming"
        return replay(answer, request.endpoint, trace.model)


__all__ = [
    "MultiCall",
    "Run",
    "Spend",
    "answer_text",
    "finish",
    "normalised",
    "strip_logprobs",
    "sub_request",
]
