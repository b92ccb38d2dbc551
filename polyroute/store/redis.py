"""Redis store (``redis.asyncio``), for state shared by several gateway replicas.

Keys are prefixed (default ``polyroute:``) so one Redis can serve several
deployments.  ``incr`` is ``INCRBYFLOAT``: atomic across replicas.
"""

from __future__ import annotations

from typing import Any


class RedisStore:
    def __init__(self, url: str = "redis://127.0.0.1:6379/0", prefix: str = "polyroute:") -> None:
        import redis.asyncio as aioredis

        self.prefix = prefix
        self._client: Any = aioredis.Redis.from_url(url)

    async def get(self, key: str) -> bytes | None:
        value = await self._client.get(self.prefix + key)
        return bytes(value) if value is not None else None

    async def set(self, key: str, value: bytes, ttl_s: float | None = None) -> None:
        px = None if ttl_s is None else max(1, int(ttl_s * 1000))
        await self._client.set(self.prefix + key, value, px=px)

    async def incr(self, key: str, amount: float = 1.0) -> float:
        return float(await self._client.incrbyfloat(self.prefix + key, amount))

    async def aclose(self) -> None:
        await self._client.aclose()
