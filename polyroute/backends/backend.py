"""A configured model endpoint: provider adapter, prices, timeouts, health and live stats."""

from __future__ import annotations

from dataclasses import dataclass, field

from polyroute.backends.health import CircuitBreaker, LiveStats
from polyroute.tokens import DEFAULT_OUTPUT_TOKENS, estimate_tokens, request_cost_usd
from polyroute.types import Provider, Request


@dataclass(slots=True, eq=False)
class Backend:
    """One model of the pool as the engine sees it.

    ``name`` is the config key (what clients and traces see); ``upstream_model``
    is the name sent upstream.
    """

    name: str
    upstream_model: str
    provider: Provider
    input_price_per_mtok: float = 0.0
    output_price_per_mtok: float = 0.0
    timeout_s: float = 30.0
    weight: float = 1.0
    breaker: CircuitBreaker = field(default_factory=CircuitBreaker)
    stats: LiveStats = field(default_factory=LiveStats)

    def available(self) -> bool:
        """True unless the circuit breaker is refusing requests now."""
        return self.breaker.available()

    def estimate_cost(self, request: Request) -> float:
        """Estimated USD for this request: prompt tokens plus ``max_tokens`` (or 256) output."""
        out = request.body.get("max_completion_tokens") or request.body.get("max_tokens")
        out_tokens = out if isinstance(out, int) and out > 0 else DEFAULT_OUTPUT_TOKENS
        return request_cost_usd(
            estimate_tokens(request.text),
            out_tokens,
            self.input_price_per_mtok,
            self.output_price_per_mtok,
        )
