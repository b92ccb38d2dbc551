"""What a red-team pass found, each reproduced through a real ``polyroute serve`` process.

The upstreams are loopback aiohttp fakes in this process that misbehave on
purpose: they echo the credentials they receive into their error messages, or
stream without end.  Every test here failed before its fix (issue 8's list):

1. an upstream key cut in half by truncation, 2. URL credentials echoed as the
``Basic`` token, 3. non-Latin-1 model and decision names, 5. clients that stop
reading a stream, 11. a model whose ``base_url`` is the gateway itself, and 13.
the smaller ones (trailing-slash redirects, huge ``model`` values, WebSocket
upgrades, plain-text log lines).  Slow and silent *heads* (4), pipelining (8)
and the head limit (9) are wire-level: ``tests/server/test_fuzz_http.py``.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import openai
import orjson
import pytest
from aiohttp import web
from fakes import FakeUpstream, running
from procs import LOOPBACK, Proc, free_port, start_gateway
from wire import check, exchange, request

UPSTREAM_KEY = "sk-up-SECRET-" + "k" * 30
URL_USER, URL_PASSWORD = "user", "pw-URL-SECRET-777"
BASIC = base64.b64encode(f"{URL_USER}:{URL_PASSWORD}".encode()).decode()
MESSAGES: Any = [{"role": "user", "content": "hello"}]


@dataclass
class HostileUpstream(FakeUpstream):
    """``echo_auth``: 400 whose message is the client's prompt + the Authorization header
    received; ``echo_headers``: 400 listing every header received; ``endless``: a stream
    of 4 KiB chunks for as long as the reader takes them (bounded at 60 s)."""

    mode: str = "echo_auth"
    open_streams: int = 0
    streams_seen: int = 0
    received: list[dict[str, str]] = field(default_factory=list)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        headers = dict(request.headers)
        self.received.append(headers)
        if self.mode == "echo_auth":
            prompt = body["messages"][-1]["content"]
            message = f"{prompt} got {headers.get('Authorization', '')}"
            return web.json_response({"error": {"message": message}}, status=400)
        if self.mode == "echo_headers":
            listing = "; ".join(f"{k}: {v}" for k, v in headers.items())
            return web.json_response({"error": {"message": listing}}, status=400)
        return await self._endless(request)

    async def _endless(self, request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        self.open_streams += 1
        self.streams_seen += 1
        chunk = {"choices": [{"index": 0, "delta": {"content": "x" * 4096}}]}
        line = b"data: " + orjson.dumps(chunk) + b"\n\n"
        try:
            async with asyncio.timeout(60):
                while True:
                    await resp.write(line)
        except (ConnectionError, TimeoutError):
            pass
        finally:
            self.open_streams -= 1
        return resp


def _client(proc: Proc) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{proc.url}/v1", api_key="unused", max_retries=0, timeout=30)


def _log_records(proc: Proc) -> list[dict[str, Any]]:
    return [json.loads(line) for line in proc.log_path.read_text().splitlines() if line.strip()]


def _wait(predicate: Callable[[], bool], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


@pytest.fixture(scope="module")
def upstreams() -> Iterator[tuple[FakeUpstream, ...]]:
    with running(
        HostileUpstream("echo", mode="echo_auth"),
        HostileUpstream("headers", mode="echo_headers"),
        HostileUpstream("endless", mode="endless"),
        FakeUpstream("plain"),
    ) as ups:
        yield ups


@pytest.fixture(scope="module")
def gateway(
    upstreams: tuple[FakeUpstream, ...], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Proc]:
    echo, headers, endless, plain = upstreams
    url_with_credentials = headers.base_url.replace("http://", f"http://{URL_USER}:{URL_PASSWORD}@")
    config = {
        "models": {
            "echo": {"base_url": echo.base_url, "api_key": UPSTREAM_KEY},
            "creds": {"base_url": url_with_credentials},
            "endless": {"base_url": endless.base_url},
            "模型": {"base_url": plain.base_url},
        },
        "decisions": [
            {"name": "决定", "when": True, "models": ["模型"]},
        ],
        "server": {
            "retries": 0,
            "max_concurrent_requests": 4,
            "write_timeout_s": 1.0,
            "stream_idle_timeout_s": 30,
        },
    }
    proc = start_gateway("gateway", config, tmp_path_factory.mktemp("red-team"))
    try:
        yield proc
    finally:
        proc.stop()


# ------------------------------------------------------------------ 1, 2: secrets


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_a_key_cut_by_the_length_cap_never_leaks(gateway: Proc, stream: bool) -> None:
    """The upstream echoes the client's text then ``Bearer <key>``; whatever the length of
    the text before it, no part of the key reaches the client (finding 1)."""
    with _client(gateway) as client:
        for pad in (480, 494, 497, 499, 505, 520):
            messages = [{"role": "user", "content": "x" * pad}]
            with pytest.raises(openai.BadRequestError) as err:
                client.chat.completions.create(model="echo", messages=messages, stream=stream)
            message = err.value.response.json()["error"]["message"]
            assert "(upstream status 400)" in message
            assert "sk-up" not in message and "SECRET" not in message, message[-80:]
            assert UPSTREAM_KEY[:4] not in message.split(" got ")[-1], message[-80:]
    assert UPSTREAM_KEY not in gateway.log_path.read_text()


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_url_credentials_never_leak_in_any_form(gateway: Proc, stream: bool) -> None:
    """``http://user:pw@host`` makes the HTTP client send ``Authorization: Basic <b64>``;
    an upstream echoing its headers must not hand that token (or the password) to the
    client or the log (finding 2)."""
    with _client(gateway) as client, pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(model="creds", messages=MESSAGES, stream=stream)
    text = err.value.response.text
    assert "(upstream status 400)" in text
    assert BASIC not in text and URL_PASSWORD not in text, text
    log = gateway.log_path.read_text()
    assert BASIC not in log and URL_PASSWORD not in log


# ------------------------------------------------------------------ 3: non-ASCII names


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_non_latin1_names_are_served_and_logged(gateway: Proc, stream: bool) -> None:
    """A model ``模型`` chosen by a decision ``决定``: 200, the headers percent-encoded, the
    body's ``model`` as configured, one access-log line with status 200 (finding 3)."""
    body: dict[str, Any] = {"model": "auto", "messages": MESSAGES, "stream": stream}
    with httpx.Client(timeout=30) as http:
        resp = http.post(f"{gateway.url}/v1/chat/completions", json=body)
    assert resp.status_code == 200, resp.text
    assert resp.headers["x-polyroute-model"] == "%E6%A8%A1%E5%9E%8B"
    assert resp.headers["x-polyroute-decision"] == "%E5%86%B3%E5%AE%9A"
    if stream:
        assert resp.text.rstrip().endswith("data: [DONE]")
        assert '"model":"模型"' in resp.text
    else:
        assert resp.json()["model"] == "模型"
    trace_id = resp.headers["x-polyroute-trace-id"]
    assert _wait(lambda: any(r.get("trace_id") == trace_id for r in _log_records(gateway)), 5)
    line = next(r for r in _log_records(gateway) if r.get("trace_id") == trace_id)
    assert line["status"] == 200 and line["model"] == "模型" and line["decision"] == "决定"


# ------------------------------------------------------------------ 5: stalled readers


def test_clients_that_stop_reading_a_stream_lose_their_slots(
    gateway: Proc, upstreams: tuple[FakeUpstream, ...]
) -> None:
    """Four clients (the concurrency limit) open endless streams, read 100 bytes and stop
    reading.  Within ``write_timeout_s`` (+ the time to fill socket buffers) their
    connections are cut, their upstream streams closed, and a new request is served
    (finding 5: every slot was held for as long as the clients liked)."""
    endless = upstreams[2]
    assert isinstance(endless, HostileUpstream)
    body = b'{"model":"endless","stream":true,"messages":[{"role":"user","content":"go"}]}'
    stalled: list[socket.socket] = []
    try:
        for _ in range(4):
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.settimeout(10)
            sock.connect((LOOPBACK, gateway.port))
            sock.sendall(request(body, path=b"/v1/chat/completions"))
            assert sock.recv(100)
            stalled.append(sock)
        assert _wait(lambda: endless.streams_seen >= 4, 10)
        assert _wait(lambda: endless.open_streams == 0, 20), endless.open_streams
        answer = exchange(gateway.port, request(path=b"/v1/chat/completions"))[0]
        check(answer)
        assert answer.status == 200, answer.raw[:300]
        outcomes = [r.get("outcome") for r in _log_records(gateway)]
        assert outcomes.count("client_stopped_reading") >= 4
        assert outcomes.count("client_disconnected") >= 4
    finally:
        for sock in stalled:
            sock.close()


# ------------------------------------------------------------------ 13: the smaller ones


def test_a_trailing_slash_is_a_json_404_not_a_redirect(gateway: Proc) -> None:
    data = request(path=b"/v1/chat/completions/", headers=b"Host: evil.example\r\n")
    answer = exchange(gateway.port, data.replace(b"Host: gw\r\n", b""))[0]
    check(answer)
    assert answer.status == 404 and b"location" not in answer.headers


def test_a_huge_model_value_is_not_echoed(gateway: Proc) -> None:
    body = orjson.dumps({"model": "m" * 3_000_000, "messages": MESSAGES})
    with httpx.Client(timeout=30) as http:
        resp = http.post(f"{gateway.url}/v1/chat/completions", content=body)
    assert resp.status_code == 400 and len(resp.content) < 1000, resp.content[:200]
    assert resp.json()["error"]["param"] == "model"
    assert max(len(line) for line in gateway.log_path.read_text().splitlines()) < 100_000


def test_a_websocket_upgrade_gets_a_json_answer(gateway: Proc) -> None:
    data = (
        b"GET /v1/chat/completions HTTP/1.1\r\nHost: gw\r\nConnection: Upgrade\r\n"
        b"Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
    )
    answer = exchange(gateway.port, data)[0]
    check(answer)
    assert answer.status in (404, 405), answer.raw[:200]


def test_every_log_line_is_json(gateway: Proc) -> None:
    """Runs after the others: uvicorn's own warnings included, one JSON object a line."""
    exchange(gateway.port, b"NOT HTTP\r\n\r\n")
    lines = gateway.log_path.read_text().splitlines()
    assert lines
    for line in lines:
        assert isinstance(json.loads(line), dict), line
    assert "Traceback" not in "\n".join(lines)


# ------------------------------------------------------------------ 11: a config loop


def test_a_model_pointing_at_the_gateway_itself_is_refused_once(
    upstreams: tuple[FakeUpstream, ...], tmp_path: Path
) -> None:
    """``base_url`` = the gateway: the request it sends itself is refused with 508 at once
    (no retry), and the decision fails over to the next model (finding 11: one request
    became 2,001 internal ones)."""
    plain = upstreams[3]
    port = free_port()
    config = {
        "models": {
            "self": {"base_url": f"http://{LOOPBACK}:{port}/v1"},
            "plain": {"base_url": plain.base_url},
        },
        "decisions": [{"name": "loop", "when": True, "models": ["self", "plain"]}],
        "server": {"retries": 2, "backoff_base_s": 0.001},
    }
    proc = start_gateway("loop-gateway", config, tmp_path, port)
    try:
        with httpx.Client(timeout=30) as http:
            resp = http.post(f"{proc.url}/v1/chat/completions", json={"messages": MESSAGES})
        assert resp.status_code == 200, resp.text
        assert resp.headers["x-polyroute-model"] == "plain"
        time.sleep(0.3)
        records = [r for r in _log_records(proc) if r.get("event") == "request"]
        refused = [r for r in records if r.get("status") == 508]
        assert len(refused) == 1, records
        outer = next(r for r in records if r.get("status") == 200)
        assert [a["outcome"] for a in outer["attempts"]] == ["status_508", "ok"]
        direct = http_direct(proc, "self")  # no other candidate: the 508 is explained
        assert direct.status_code == 502 and "self: status_508" in direct.text, direct.text
    finally:
        proc.stop()


def http_direct(proc: Proc, model: str) -> httpx.Response:
    with httpx.Client(timeout=30) as http:
        return http.post(
            f"{proc.url}/v1/chat/completions", json={"model": model, "messages": MESSAGES}
        )


def test_head_timeout_frees_descriptors_under_a_low_file_limit(
    upstreams: tuple[FakeUpstream, ...], tmp_path: Path
) -> None:
    """With the open-file limit at 300, 320 silent sockets used to make every legitimate
    request fail for as long as they stayed (finding 4); with ``head_timeout_s`` they are
    closed and a request on a fresh connection is answered."""
    plain = upstreams[3]
    config = {
        "models": {"plain": {"base_url": plain.base_url}},
        "server": {"head_timeout_s": 1.0, "max_concurrent_requests": 16},
    }
    proc = start_gateway("low-files", config, tmp_path, wrapper=("prlimit", "--nofile=300:300"))
    port = proc.port
    silent: list[socket.socket] = []
    try:
        for _ in range(320):
            with contextlib.suppress(OSError):
                silent.append(socket.create_connection((LOOPBACK, port), timeout=5))
        time.sleep(3.0)  # head_timeout_s, plus asyncio's 1 s pause after EMFILE
        ok = False
        for _ in range(20):
            with contextlib.suppress(OSError, AssertionError):
                answer = exchange(port, request(path=b"/v1/chat/completions"), timeout_s=5)[0]
                ok = answer.status == 200
            if ok:
                break
            time.sleep(0.5)
        assert ok, proc.log_tail()
    finally:
        for sock in silent:
            sock.close()
        proc.stop()
