"""Token count signal: the estimated number of input tokens (about four characters each).

It counts the whole text, however long (a length costs nothing; the text is not scanned),
so it is not bounded by ``server.signal_text_max_chars``.
"""

from __future__ import annotations

from typing import Literal

from polyroute.signals.base import BaseSignal, SignalOptions
from polyroute.tokens import estimate_tokens
from polyroute.types import Request, SignalValue


class TokenOptions(SignalOptions):
    field: Literal["prompt", "text"] = "text"


class TokenCountSignal(BaseSignal):
    Options = TokenOptions
    options: TokenOptions

    def compute(self, request: Request) -> SignalValue:
        return estimate_tokens(request.prompt if self.options.field == "prompt" else request.text)
