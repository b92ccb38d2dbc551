"""What a request cost, to the token: from the upstream's reported ``usage``.

Every answered request gets ``trace.input_tokens``, ``trace.output_tokens``,
``trace.cost_usd`` and ``trace.cost_source``:

- ``usage``: the upstream reported its token counts (``usage.prompt_tokens`` and
  ``usage.completion_tokens``); the cost is those counts times the model's prices.
  For a stream the gateway asks the upstream for them
  (``stream_options.include_usage``) and strips the extra usage chunk when the client
  did not ask for it.
- ``estimate``: the upstream reported none (or the stream was cut): the estimate made
  before the call (prompt tokens plus ``max_tokens`` or 256), and the log says so.
- ``cache``: answered by a plugin (a cache hit): no upstream call, cost 0.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from polyroute.tokens import request_cost_usd
from polyroute.types import JSON, Request, Trace

if TYPE_CHECKING:
    from polyroute.backends.backend import Backend


def usage_of(body: JSON) -> tuple[int, int] | None:
    """(input, output) tokens from an answer's or a chunk's ``usage``; None if absent."""
    usage = body.get("usage")
    if usage.__class__ is not dict:
        return None
    tokens_in, tokens_out = usage.get("prompt_tokens"), usage.get("completion_tokens")
    if tokens_in.__class__ is int and tokens_out.__class__ is int and tokens_in >= 0 <= tokens_out:
        return tokens_in, tokens_out
    return None


def account(trace: Trace, backend: Backend, usage: tuple[int, int] | None) -> None:
    """Set the trace's tokens and cost: from ``usage``, else from the estimate."""
    if usage is None:
        trace.cost_usd = trace.estimated_cost_usd
        trace.cost_source = "estimate"
        return
    trace.input_tokens, trace.output_tokens = usage
    trace.cost_usd = request_cost_usd(
        usage[0], usage[1], backend.input_price_per_mtok, backend.output_price_per_mtok
    )
    trace.cost_source = "usage"


def account_plugin_answer(trace: Trace) -> None:
    """A plugin answered (a cache hit): no upstream call was paid for."""
    trace.cost_usd = 0.0
    trace.estimated_cost_usd = 0.0
    trace.cost_source = "cache"


def with_stream_usage(request: Request) -> tuple[Request, bool]:
    """``request`` asking the upstream for usage in its stream, and whether the client did
    not ask for it (its usage chunk is then stripped)."""
    options = request.body.get("stream_options")
    if isinstance(options, dict) and options.get("include_usage") is True:
        return request, False
    asked = {**(options if isinstance(options, dict) else {}), "include_usage": True}
    upstream = Request(
        {**request.body, "stream_options": asked},
        request.endpoint,
        request.headers,
        request.raw_bytes,
    )
    upstream.memo = request.memo
    upstream.native = request.native  # a native stream reports its usage unasked
    return upstream, True


class UsageTap:
    """Reads the usage a stream reports (stripping it when the client did not ask) and
    accounts the request when the stream completes."""

    def __init__(self, trace: Trace, backend: Backend, strip: bool) -> None:
        self.trace = trace
        self.backend = backend
        self.strip = strip
        self.usage: tuple[int, int] | None = None

    def chunk(self, chunk: JSON) -> None:
        choices = chunk.get("choices")
        if choices and isinstance(choices[0], dict) and choices[0].get("finish_reason"):
            self.trace.finish_reason = str(choices[0]["finish_reason"])
        if "usage" not in chunk:
            return
        found = usage_of(chunk)
        if found is not None:
            self.usage = found
        if self.strip:
            if chunk.get("choices"):
                del chunk["usage"]
            else:
                chunk.clear()  # the usage-only chunk the client did not ask for: dropped

    async def end(self) -> list[JSON]:
        account(self.trace, self.backend, self.usage)
        return []


__all__ = ["UsageTap", "account", "account_plugin_answer", "usage_of", "with_stream_usage"]
