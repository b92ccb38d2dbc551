"""Backends: provider adapters (one registry), health, circuit breaker and failover."""

from polyroute.backends.backend import Backend
from polyroute.backends.health import CircuitBreaker, LiveStats
from polyroute.registry import Registry
from polyroute.types import Provider

PROVIDERS: Registry[type[Provider]] = Registry(
    "provider",
    {
        "openai": "polyroute.backends.openai:OpenAIProvider",
        "anthropic": "polyroute.backends.anthropic:AnthropicProvider",
    },
)

__all__ = ["PROVIDERS", "Backend", "CircuitBreaker", "LiveStats"]
