"""Security through real processes: ``polyroute serve`` with gateway keys, the real ``openai``
client, and an upstream that echoes its key back in errors.

Needs no model server: the upstream is the loopback fake from ``tests/fakes.py``.
"""

from __future__ import annotations

import concurrent.futures
import json
import socket
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import openai
import pytest
from fakes import Behaviour, FakeUpstream, running
from openai import OpenAI

from polyroute.server.security import hash_key, new_key

if TYPE_CHECKING:
    from tests.e2e.conftest import Gateway, GatewayFactory

pytestmark = pytest.mark.e2e

CLIENT_KEY = new_key()
UPSTREAM_KEY = "sk-upstream-" + "7" * 24
HEADER_SECRET = "hdr-secret-" + "3" * 20
MESSAGES: Any = [{"role": "user", "content": "hello"}]


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeUpstream]:
    with running(FakeUpstream("up")) as (up,):
        yield up


@pytest.fixture(scope="module")
def gateway(gateway_factory: GatewayFactory, upstream: FakeUpstream) -> Gateway:
    model = {
        "base_url": upstream.base_url,
        "api_key": UPSTREAM_KEY,
        "headers": {"x-api-token": HEADER_SECRET},
        "timeout_s": 5,
    }
    config = {
        "models": {"m": model},
        "server": {
            "api_keys": [{"name": "e2e-client", "sha256": hash_key(CLIENT_KEY)}],
            "max_concurrent_requests": 3,
            "retries": 0,
            "body_timeout_s": 1,
        },
    }
    return gateway_factory("gateway-security", config)


def _client(gateway: Gateway, key: str) -> OpenAI:
    return OpenAI(base_url=gateway.base_url, api_key=key, max_retries=0, timeout=30.0)


def test_real_client_needs_the_key(gateway: Gateway, upstream: FakeUpstream) -> None:
    upstream.behaviour = Behaviour()
    with _client(gateway, CLIENT_KEY) as good:
        reply = good.chat.completions.create(model="auto", messages=MESSAGES)
        assert reply.choices[0].message.content == "hello from fake (up)"
    sent = {k.lower(): v for k, v in upstream.headers[-1].items()}
    assert sent["authorization"] == f"Bearer {UPSTREAM_KEY}"
    assert sent["x-api-token"] == HEADER_SECRET
    with _client(gateway, "pr-wrong") as bad, pytest.raises(openai.AuthenticationError) as err:
        bad.chat.completions.create(model="auto", messages=MESSAGES)
    assert err.value.status_code == 401
    with _client(gateway, "pr-wrong") as bad, pytest.raises(openai.AuthenticationError):
        bad.models.list()


def test_concurrency_limit_is_a_clear_429(gateway: Gateway, upstream: FakeUpstream) -> None:
    upstream.behaviour = Behaviour(delay_s=1.0)
    try:
        with _client(gateway, CLIENT_KEY) as client:

            def call(_: int) -> str:
                try:
                    client.chat.completions.create(model="auto", messages=MESSAGES)
                except openai.RateLimitError as exc:
                    assert exc.response.headers["retry-after"] == "1"
                    return "429"
                return "200"

            with concurrent.futures.ThreadPoolExecutor(8) as pool:
                outcomes = list(pool.map(call, range(8)))
    finally:
        upstream.behaviour = Behaviour()
    assert 1 <= outcomes.count("200") <= 3 and outcomes.count("429") >= 5


def test_secrets_never_reach_clients_or_the_log(gateway: Gateway, upstream: FakeUpstream) -> None:
    echo = f"Incorrect API key provided: {UPSTREAM_KEY} / {HEADER_SECRET}"
    seen: list[str] = []
    with _client(gateway, CLIENT_KEY) as client:
        upstream.behaviour = Behaviour(mode="status", status=400, error_message=echo)
        with pytest.raises(openai.BadRequestError) as bad:
            client.chat.completions.create(model="auto", messages=MESSAGES)
        seen.append(bad.value.response.text)
        upstream.behaviour = Behaviour(mode="status", status=503, error_message=echo)
        with pytest.raises(openai.InternalServerError) as failed:
            client.chat.completions.create(model="auto", messages=MESSAGES)
        seen.append(failed.value.response.text)
        with pytest.raises(openai.InternalServerError) as failed_stream:
            client.chat.completions.create(model="auto", messages=MESSAGES, stream=True)
        seen.append(failed_stream.value.response.text)
    upstream.behaviour = Behaviour()
    assert "Incorrect API key provided: *** / ***" in seen[0]
    log = gateway.proc.log_path.read_text(errors="replace")
    assert "status_503" in log and '"client":"e2e-client"' in log
    for text in (*seen, log):
        assert UPSTREAM_KEY not in text
        assert HEADER_SECRET not in text
        assert CLIENT_KEY not in text
    for text in seen:
        assert upstream.base_url not in text


def _read_answer(sock: socket.socket) -> str:
    """Headers and body of one HTTP answer (they may arrive in several segments)."""
    data = b""
    while b"\r\n\r\n" not in data or not data.rstrip().endswith(b"}"):
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    return data.decode()


def test_a_slow_body_gets_408_and_frees_its_slot(gateway: Gateway) -> None:
    """A client that sends half a body and stalls is answered 408 after body_timeout_s."""
    body = json.dumps({"model": "auto", "messages": MESSAGES}).encode()
    head = (
        "POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Authorization: Bearer {CLIENT_KEY}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    stalled = []
    started = time.monotonic()
    for _ in range(3):  # as many as the concurrency limit: all slots held by slow clients
        sock = socket.create_connection(("127.0.0.1", gateway.proc.port), timeout=10)
        sock.sendall(head + body[:10])
        stalled.append(sock)
    answers = [_read_answer(sock) for sock in stalled]
    elapsed = time.monotonic() - started
    for sock in stalled:
        sock.close()
    for answer in answers:
        assert answer.startswith("HTTP/1.1 408"), answer
        assert '"code":"request_timeout"' in answer
    assert elapsed < 5
    with _client(gateway, CLIENT_KEY) as client:  # the slots are free again
        assert client.chat.completions.create(model="auto", messages=MESSAGES).choices
