"""In-process store: a dict with expiry times (monotonic clock)."""

from __future__ import annotations

import time
from collections.abc import Callable


class MemoryStore:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._data: dict[str, tuple[bytes, float | None]] = {}

    def _live(self, key: str) -> bytes | None:
        item = self._data.get(key)
        if item is None:
            return None
        value, expires = item
        if expires is not None and self._clock() >= expires:
            del self._data[key]
            return None
        return value

    async def get(self, key: str) -> bytes | None:
        return self._live(key)

    async def set(self, key: str, value: bytes, ttl_s: float | None = None) -> None:
        expires = None if ttl_s is None else self._clock() + ttl_s
        self._data[key] = (value, expires)

    async def incr(self, key: str, amount: float = 1.0) -> float:
        current = self._live(key)
        total = (float(current) if current is not None else 0.0) + amount
        expires = self._data[key][1] if current is not None else None
        self._data[key] = (repr(total).encode(), expires)
        return total

    async def aclose(self) -> None:
        self._data.clear()
