"""``output_guard``: check the *answer* with signals, and withhold it when a rule holds.

    plugins:
      - {type: output_guard, signal: pii}                 # no personal data in answers
      - {type: output_guard, when: {signal: leak, gt: 0.8}, message: "answer withheld"}

The answer's text (every choice's content) is read as one user message, and the rule
is evaluated on the signals computed over it (model-backed ones in a worker thread).
A whole answer that trips the rule is replaced by an OpenAI-style error (403
``output_blocked`` by default).  A stream cannot take back what it has sent: its text
is checked when it ends, and a stream that trips the rule ends with an error event
instead of a normal end (the ``openai`` client raises on it); put a non-streaming
policy in front of clients that must never see such text.  The trace's ``plugins``
list names the signals and their values.
"""

from __future__ import annotations

import asyncio
from typing import Any

from pydantic import Field, model_validator

from polyroute.errors import ConfigError
from polyroute.plugins.base import BasePlugin, ChunkTap, Context, PluginEnv, PluginOptions
from polyroute.plugins.block import BlockOptions, refusal
from polyroute.plugins.stream import chunk_texts
from polyroute.rules import compile_rule, signals_used
from polyroute.signals.base import SignalSet
from polyroute.types import JSON, Request, signals_json


class OutputGuardOptions(PluginOptions):
    signal: str | None = None
    when: Any = None
    message: str = Field(default="the answer was withheld by policy", min_length=1)
    status: int = Field(default=403, ge=400, le=599)
    code: str = Field(default="output_blocked", pattern=r"^[a-z0-9_]{1,64}$")

    @model_validator(mode="after")
    def _one_rule(self) -> OutputGuardOptions:
        if (self.signal is None) == (self.when is None):
            raise ValueError("give either signal: NAME or when: RULE")
        return self


class OutputGuard(BasePlugin):
    Options = OutputGuardOptions
    options: OutputGuardOptions

    def setup(self, env: PluginEnv) -> None:
        o = self.options
        rule = o.signal if o.when is None else o.when
        where = f"{self.where}.{'when' if o.when is not None else 'signal'}"
        self.rule = compile_rule(rule, where, dict(env.signal_sets))
        names = sorted(signals_used(rule))
        for name in names:
            if name not in env.signals:
                raise ConfigError(
                    f"{where}: unknown signal {name!r}; defined: {sorted(env.signals)}"
                )
        self.watched = {name: env.signals[name] for name in names}
        self.blocking = any(s.blocking for s in self.watched.values())
        self.refusal = BlockOptions(message=o.message, status=o.status, code=o.code)

    def _check(self, text: str) -> JSON | None:
        """The fired signals' values when the rule holds on ``text``, else None."""
        signals = SignalSet(self.watched, Request.chat(text))
        if not self.rule(signals):
            return None
        return signals_json({name: signals.get(name) for name in self.watched})

    async def check(self, text: str) -> JSON | None:
        if self.blocking:
            return await asyncio.to_thread(self._check, text)
        return self._check(text)

    async def on_answer(self, ctx: Context, answer: JSON) -> JSON:
        fired = await self.check(answer_text(answer))
        if fired is None:
            return answer
        ctx.trace.events.append({"plugin": "output_guard", "action": "withheld", "signals": fired})
        ctx.trace.outcome = "output_blocked"
        raise refusal(self.refusal)

    def on_stream(self, ctx: Context) -> ChunkTap | None:
        return _StreamCheck(self, ctx)


def answer_text(answer: JSON) -> str:
    parts = []
    for choice in answer.get("choices") or ():
        if not isinstance(choice, dict):
            continue
        message = choice.get("message")
        if isinstance(message, dict) and isinstance(message.get("content"), str):
            parts.append(message["content"])
        elif isinstance(choice.get("text"), str):
            parts.append(choice["text"])
    return "\n".join(parts)


class _StreamCheck:
    def __init__(self, guard: OutputGuard, ctx: Context) -> None:
        self.guard = guard
        self.ctx = ctx
        self.parts: list[str] = []

    def chunk(self, chunk: JSON) -> None:
        self.parts.extend(holder[key] for _, holder, key in chunk_texts(chunk))

    async def end(self) -> list[JSON]:
        fired = await self.guard.check("".join(self.parts))
        if fired is None:
            return []
        trace = self.ctx.trace
        trace.events.append({"plugin": "output_guard", "action": "withheld", "signals": fired})
        trace.outcome = "output_blocked"
        o = self.guard.refusal
        return [{"error": {"message": o.message, "type": "invalid_request_error", "code": o.code}}]
