"""One conformance test over every registered store (Redis: the real server on loopback)."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from polyroute.store import STORES

REDIS_URL = os.environ.get("POLYROUTE_TEST_REDIS", "redis://127.0.0.1:6379/15")


async def _redis_up() -> bool:
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(REDIS_URL, socket_connect_timeout=1)
    try:
        return bool(await client.ping())
    except OSError:
        return False
    except Exception:
        return False
    finally:
        await client.aclose()


@pytest.fixture(params=STORES.names())
async def store(request: pytest.FixtureRequest, tmp_path: Any) -> AsyncIterator[Any]:
    name = request.param
    if name == "redis":
        if not await _redis_up():
            if os.environ.get("CI"):
                pytest.fail(f"Redis is not reachable at {REDIS_URL} (CI must start it)")
            pytest.skip(f"Redis is not reachable at {REDIS_URL}")
        store = STORES.get(name)(url=REDIS_URL, prefix=f"test:{uuid.uuid4().hex}:")
    elif name == "sqlite":
        store = STORES.get(name)(path=str(tmp_path / "store.sqlite3"))
    else:
        store = STORES.get(name)()
    yield store
    await store.aclose()


async def test_get_set_incr_ttl(store: Any) -> None:
    assert await store.get("missing") is None
    await store.set("k", b"v")
    assert await store.get("k") == b"v"
    assert await store.incr("n") == 1.0
    assert await store.incr("n", 2.5) == 3.5
    await store.set("short", b"x", ttl_s=0.05)
    assert await store.get("short") == b"x"
    await asyncio.sleep(0.1)
    assert await store.get("short") is None


async def test_sqlite_keeps_state_across_a_restart(tmp_path: Any) -> None:
    path = str(tmp_path / "s.sqlite3")
    first = STORES.get("sqlite")(path=path)
    await first.set("conversation", b"turns", ttl_s=60)
    await first.set("gone", b"x", ttl_s=0.01)
    await first.aclose()
    await asyncio.sleep(0.05)
    again = STORES.get("sqlite")(path=path)
    try:
        assert await again.get("conversation") == b"turns"
        assert await again.get("gone") is None
    finally:
        await again.aclose()
