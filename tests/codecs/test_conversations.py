"""Stored Responses conversations: three turns, TTL expiry, tenant isolation, delete and
size bounds, over the memory store (with a fake clock) and Redis when it runs."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from openai.types.responses import Response

from polyroute.codecs.conversations import ConversationStore, ResponseNotFound
from polyroute.codecs.openai_responses import (
    conversation_after,
    decode_request,
    encode_response,
    new_response_id,
)
from polyroute.errors import ModelNotFound, PayloadTooLarge
from polyroute.store.memory import MemoryStore

REDIS_URL = os.environ.get("POLYROUTE_TEST_REDIS", "redis://127.0.0.1:6379/15")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class RecordingStore(MemoryStore):
    """A memory store that remembers every key it was given."""

    def __init__(self, clock: Clock) -> None:
        super().__init__(clock)
        self.keys: list[str] = []

    async def set(self, key: str, value: bytes, ttl_s: float | None = None) -> None:
        self.keys.append(key)
        await super().set(key, value, ttl_s)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(clock: Clock) -> RecordingStore:
    return RecordingStore(clock)


def chat_answer(text: str) -> dict[str, Any]:
    return {
        "object": "chat.completion",
        "model": "small",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
        ],
    }


async def turn(
    convs: ConversationStore, tenant: str, body: dict[str, Any], reply: str
) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """One gateway turn: resolve history, decode, "call upstream", encode, store."""
    previous = body.get("previous_response_id")
    history = await convs.history(tenant, previous) if previous else []
    chat = decode_request(body, history)
    convs.check(chat["messages"])
    response_id = new_response_id()
    response = encode_response(chat_answer(reply), body, response_id, 1)
    if body.get("store", True):
        await convs.save(tenant, response_id, conversation_after(body, history, response), response)
    return response_id, response, chat


async def test_three_turns_continue_by_previous_response_id(store: RecordingStore) -> None:
    convs = ConversationStore(store, ttl_s=60)
    r1, _, _ = await turn(convs, "alice", {"instructions": "old rules", "input": "one"}, "1")
    r2, _, _ = await turn(convs, "alice", {"input": "two", "previous_response_id": r1}, "2")
    r3, resp3, chat3 = await turn(
        convs,
        "alice",
        {"instructions": "new rules", "input": "three", "previous_response_id": r2},
        "3",
    )
    assert chat3["messages"] == [
        {"role": "system", "content": "new rules"},  # instructions are not carried over
        {"role": "user", "content": "one"},
        {"role": "assistant", "content": "1"},
        {"role": "user", "content": "two"},
        {"role": "assistant", "content": "2"},
        {"role": "user", "content": "three"},
    ]
    assert await convs.get("alice", r3) == resp3
    Response.model_validate(await convs.get("alice", r3))
    assert len(await convs.history("alice", r3)) == 6
    # branching: continuing from the first response again starts from its snapshot
    _, _, chat4 = await turn(convs, "alice", {"input": "again", "previous_response_id": r1}, "x")
    assert [m["content"] for m in chat4["messages"]] == ["one", "1", "again"]


async def test_store_false_keeps_nothing(store: RecordingStore) -> None:
    convs = ConversationStore(store, ttl_s=60)
    rid, _, _ = await turn(convs, "alice", {"input": "x", "store": False}, "y")
    assert store.keys == []
    with pytest.raises(ResponseNotFound):
        await convs.get("alice", rid)


async def test_records_expire_after_the_ttl(store: RecordingStore, clock: Clock) -> None:
    convs = ConversationStore(store, ttl_s=60)
    rid, _, _ = await turn(convs, "alice", {"input": "x"}, "y")
    clock.now += 59
    assert await convs.history("alice", rid)
    clock.now += 2
    with pytest.raises(ResponseNotFound) as info:
        await convs.history("alice", rid)
    assert info.value.status == 404 and rid in info.value.message
    assert info.value.param == "previous_response_id"


async def test_tenants_are_isolated(store: RecordingStore) -> None:
    convs = ConversationStore(store, ttl_s=60)
    rid, _, _ = await turn(convs, "alice", {"input": "secret"}, "y")
    missing = new_response_id()
    for call in (convs.history, convs.get):
        with pytest.raises(ModelNotFound) as other:
            await call("bob", rid)
        with pytest.raises(ModelNotFound) as absent:
            await call("bob", missing)
        # the same answer as for an id that never existed: nothing is revealed
        assert other.value.message.replace(rid, "ID") == absent.value.message.replace(missing, "ID")
    assert await convs.delete("bob", rid) is False
    assert await convs.history("alice", rid)  # bob's delete did not touch it
    assert all("alice" not in key and rid in key for key in store.keys)  # tenant hashed


async def test_delete(store: RecordingStore) -> None:
    convs = ConversationStore(store, ttl_s=60)
    rid, _, _ = await turn(convs, "alice", {"input": "x"}, "y")
    assert await convs.delete("alice", rid) is True
    with pytest.raises(ResponseNotFound):
        await convs.get("alice", rid)
    with pytest.raises(ResponseNotFound):
        await convs.history("alice", rid)
    assert await convs.delete("alice", rid) is False


@pytest.mark.parametrize("bad", ["", "../x", "resp_" + "a" * 200, "a:b", "é"])
async def test_odd_ids_are_not_found(store: RecordingStore, bad: str) -> None:
    convs = ConversationStore(store, ttl_s=60)
    with pytest.raises(ResponseNotFound):
        await convs.get("alice", bad)
    assert await convs.delete("alice", bad) is False


async def test_conversations_are_bounded(store: RecordingStore) -> None:
    convs = ConversationStore(store, ttl_s=60, max_bytes=2000)
    rid, _, _ = await turn(convs, "alice", {"input": "x"}, "y")
    with pytest.raises(PayloadTooLarge) as info:
        await turn(convs, "alice", {"input": "z" * 3000, "previous_response_id": rid}, "y")
    assert info.value.status == 413 and "2000" in info.value.message
    big = [{"role": "user", "content": "z" * 3000}]
    with pytest.raises(PayloadTooLarge):
        await convs.save("alice", new_response_id(), big, {})
    with pytest.raises(ValueError, match="positive"):
        ConversationStore(store, ttl_s=0)


@pytest.fixture
async def redis_convs() -> AsyncIterator[ConversationStore]:
    import redis.asyncio as aioredis

    from polyroute.store.redis import RedisStore

    probe = aioredis.Redis.from_url(REDIS_URL, socket_connect_timeout=1)
    try:
        await probe.ping()
    except Exception:
        if os.environ.get("CI"):
            pytest.fail(f"Redis is not reachable at {REDIS_URL} (CI must start it)")
        pytest.skip(f"Redis is not reachable at {REDIS_URL}")
    finally:
        await probe.aclose()
    store = RedisStore(REDIS_URL, prefix=f"test:{uuid.uuid4().hex}:")
    yield ConversationStore(store, ttl_s=60)
    await store.aclose()


async def test_turns_and_delete_over_redis(redis_convs: ConversationStore) -> None:
    r1, _, _ = await turn(redis_convs, "alice", {"input": "one"}, "1")
    r2, resp, _ = await turn(
        redis_convs, "alice", {"input": "two", "previous_response_id": r1}, "2"
    )
    assert [m["content"] for m in await redis_convs.history("alice", r2)] == [
        "one",
        "1",
        "two",
        "2",
    ]
    assert await redis_convs.get("alice", r2) == resp
    with pytest.raises(ResponseNotFound):
        await redis_convs.get("bob", r2)
    assert await redis_convs.delete("alice", r2) is True
    with pytest.raises(ResponseNotFound):
        await redis_convs.get("alice", r2)
