"""Stores: shared state behind one interface (``polyroute.types.Store``), one registry.

``memory`` (default: one process, zero setup) and ``redis`` (several gateway
replicas behind a load balancer).  Later features (cache, bandit statistics,
budgets, rate limits) keep their state here.
"""

from polyroute.registry import Registry
from polyroute.types import Store

STORES: Registry[type[Store]] = Registry(
    "store",
    {
        "memory": "polyroute.store.memory:MemoryStore",
        "sqlite": "polyroute.store.sqlite:SqliteStore",
        "redis": "polyroute.store.redis:RedisStore",
    },
)

__all__ = ["STORES"]
