"""A pooled connection the upstream dropped is retried once on a new one, and only then."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import orjson
import pytest

from polyroute.backends.openai import OpenAIProvider
from polyroute.errors import UpstreamError
from polyroute.types import Request

ANSWER = orjson.dumps({"id": "x", "object": "chat.completion", "choices": []})


class DroppingUpstream:
    """Answers the first request of each connection with keep-alive; on a connection's
    second request it reads it and hangs up without answering (a stale pooled connection),
    or, with ``always_drop``, hangs up on every request."""

    def __init__(self, always_drop: bool = False) -> None:
        self.always_drop = always_drop
        self.requests = 0
        self.connections = 0
        self.port = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        served = 0
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(
                    int(line.split(b":")[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                )
                await reader.readexactly(length)
                self.requests += 1
                if served >= 1 or self.always_drop:
                    return  # hang up without answering
                served += 1
                writer.write(
                    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                    b"content-length: %d\r\n\r\n%s" % (len(ANSWER), ANSWER)
                )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            return
        finally:
            writer.close()


@pytest.fixture
async def dropping() -> AsyncIterator[DroppingUpstream]:
    up = DroppingUpstream()
    server = await asyncio.start_server(up.handle, "127.0.0.1", 0)
    up.port = server.sockets[0].getsockname()[1]
    async with server:
        yield up


async def test_stale_pooled_connection_is_retried_on_a_new_one(dropping: DroppingUpstream) -> None:
    provider = OpenAIProvider(f"http://127.0.0.1:{dropping.port}/v1", keepalive_s=60)
    try:
        for _ in range(3):
            answer = await provider.complete(Request.chat("hi"), "m", timeout_s=5)
            assert answer["id"] == "x"
    finally:
        await provider.aclose()
    # request 1 on connection A; request 2 reuses A, is dropped, and goes out again on a
    # new connection B (closed after use); request 3 finds the pool empty and opens C
    assert dropping.requests == 4
    assert dropping.connections == 3


async def test_a_new_connection_that_drops_is_a_real_failure() -> None:
    up = DroppingUpstream(always_drop=True)
    server = await asyncio.start_server(up.handle, "127.0.0.1", 0)
    up.port = server.sockets[0].getsockname()[1]
    provider = OpenAIProvider(f"http://127.0.0.1:{up.port}/v1")
    try:
        async with server:
            with pytest.raises(UpstreamError):
                await provider.complete(Request.chat("hi"), "m", timeout_s=5)
    finally:
        await provider.aclose()
    assert up.requests == 1  # no silent second try on a connection that was never pooled
