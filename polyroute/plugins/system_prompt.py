"""``system_prompt``: prepend (or replace) the system message before the model call."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from polyroute.plugins.base import BasePlugin, Context, PluginOptions, Verdict


class SystemPromptOptions(PluginOptions):
    text: str = Field(min_length=1)
    mode: Literal["prepend", "replace"] = "prepend"


class SystemPrompt(BasePlugin):
    Options = SystemPromptOptions
    options: SystemPromptOptions

    async def on_request(self, ctx: Context) -> Verdict:
        request = ctx.request
        if request.endpoint == "chat":
            messages = request.messages
            if self.options.mode == "replace":
                messages = [m for m in messages if m.get("role") != "system"]
            system = {"role": "system", "content": self.options.text}
            ctx.rewrite({**request.body, "messages": [system, *messages]})
        return None
