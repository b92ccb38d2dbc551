"""``guard``: when a signal fires (or a rule holds), refuse the request or reroute it.

    plugins:
      - {type: guard, signal: jailbreak}                        # refuse: 403 "blocked"
      - {type: guard, signal: jailbreak, action: reroute, to: safe-decision}
      - {type: guard, when: {signal: pii, contains: US_SSN}, status: 422, message: "..."}

``signal: NAME`` means the bare rule ``when: NAME`` (a score signal fires at its
threshold).  A refusal is an OpenAI-style error with the configured status, message
and code; a reroute sends the request to another decision of the same profile, or
straight to a model.  The trace's ``plugins`` list says which signals fired, with
their values.  A signal that is unknown (failed or timed out) does not fire unless
the rule says so.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from polyroute.errors import ConfigError
from polyroute.plugins.base import BasePlugin, Context, PluginEnv, PluginOptions, Reroute, Verdict
from polyroute.plugins.block import BlockOptions, refusal
from polyroute.rules import compile_rule, signals_used
from polyroute.types import signals_json


class GuardOptions(PluginOptions):
    signal: str | None = None
    when: Any = None
    action: Literal["refuse", "reroute"] = "refuse"
    to: str | None = Field(default=None, min_length=1)
    message: str = Field(default="request refused by policy", min_length=1)
    status: int = Field(default=403, ge=400, le=499)
    code: str = Field(default="blocked", pattern=r"^[a-z0-9_]{1,64}$")

    @model_validator(mode="after")
    def _consistent(self) -> GuardOptions:
        if (self.signal is None) == (self.when is None):
            raise ValueError("give either signal: NAME or when: RULE")
        if (self.action == "reroute") != (self.to is not None):
            raise ValueError("action: reroute needs to: DECISION_OR_MODEL (and only it)")
        return self


class Guard(BasePlugin):
    Options = GuardOptions
    options: GuardOptions

    def setup(self, env: PluginEnv) -> None:
        rule = self.options.signal if self.options.when is None else self.options.when
        where = f"{self.where}.{'when' if self.options.when is not None else 'signal'}"
        self.rule = compile_rule(rule, where, dict(env.signal_sets))
        self.signals = tuple(sorted(signals_used(rule)))
        for name in self.signals:
            if name not in env.signal_names:
                raise ConfigError(
                    f"{where}: unknown signal {name!r}; defined: {sorted(env.signal_names)}"
                )
        o = self.options
        self.refusal = BlockOptions(message=o.message, status=o.status, code=o.code)

    def reroute_targets(self) -> tuple[str, ...]:
        return (self.options.to,) if self.options.to else ()

    async def on_request(self, ctx: Context) -> Verdict:
        return self.preview(ctx)

    def preview(self, ctx: Context) -> Verdict:
        if not self.rule(ctx.signals):
            return None
        fired = signals_json({name: ctx.signals.get(name) for name in self.signals})
        if self.options.to is not None:
            ctx.trace.events.append(
                {"plugin": "guard", "action": "rerouted", "to": self.options.to, "signals": fired}
            )
            return Reroute(self.options.to, reason="guard")
        ctx.trace.events.append({"plugin": "guard", "action": "refused", "signals": fired})
        ctx.trace.outcome = "blocked"
        raise refusal(self.refusal)
