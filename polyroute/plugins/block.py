"""``block``: refuse the request explicitly (an OpenAI-style error) instead of calling a model.

A decision's ``action: block`` is the shorthand for ``plugins: [{type: block}]``.
"""

from __future__ import annotations

from pydantic import Field

from polyroute.errors import Blocked
from polyroute.plugins.base import BasePlugin, Context, PluginOptions, Verdict


class BlockOptions(PluginOptions):
    message: str = Field(default="request refused by policy", min_length=1)
    status: int = Field(default=403, ge=400, le=499)
    code: str = Field(default="blocked", pattern=r"^[a-z0-9_]{1,64}$")


def refusal(options: BlockOptions) -> Blocked:
    exc = Blocked(options.message)
    exc.status = options.status
    exc.code = options.code
    return exc


class Block(BasePlugin):
    Options = BlockOptions
    options: BlockOptions

    async def on_request(self, ctx: Context) -> Verdict:
        return self.preview(ctx)

    def preview(self, ctx: Context) -> Verdict:
        ctx.trace.outcome = "blocked"
        ctx.trace.events.append({"plugin": "block", "action": "refused"})
        raise refusal(self.options)
