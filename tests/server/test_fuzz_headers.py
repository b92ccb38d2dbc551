"""Property: whatever header bytes reach the app, it answers 2xx or an OpenAI-style
4xx -- never a 500 -- and header garbage never changes who is let in.

In-process, through raw ASGI calls (no HTTP client normalises the headers):
names and values are arbitrary bytes, as a server that does not validate them
would pass them.  The gateway here has an API key configured and a metadata
signal that routes on a header, so header values reach the key check and the
router.  What uvicorn/httptools does to the same bytes on the wire is tested
through a real process in ``test_fuzz_http.py``.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from fakes import FakeUpstream, gateway_config, running
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from polyroute import Engine, parse_config
from polyroute.server import create_app

KEY = "pr-fuzz-key-0123456789abcdef0123456789abcdef"
CHAT = b'{"messages": [{"role": "user", "content": "hi"}]}'
LEAKS = (b"Traceback", b'File "', b"site-packages", b"/polyroute/", b"Exception")
SETTINGS = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)

Headers = list[tuple[bytes, bytes]]
Answer = tuple[int, Headers, bytes]


def _config(small: str, large: str) -> dict[str, Any]:
    config = gateway_config(small, large)
    config["signals"]["tier"] = {"type": "metadata", "header": "x-tier"}
    gold = {"name": "gold", "priority": 20, "when": {"signal": "tier", "eq": "gold"}}
    config["decisions"].insert(0, {**gold, "models": ["large"]})
    sha = hashlib.sha256(KEY.encode()).hexdigest()
    config["server"]["api_keys"] = [{"name": "fuzz", "sha256": sha}]
    return config


class Gateway:
    """The app with its lifespan running; ``call`` sends one raw ASGI request."""

    def __init__(self, client: TestClient) -> None:
        self.client = client
        self.app = client.app

    def call(self, method: str, path: str, headers: Headers, body: bytes = b"") -> Answer:
        assert self.client.portal is not None
        return self.client.portal.call(self._call, method, path, headers, body)

    async def _call(self, method: str, path: str, headers: Headers, body: bytes) -> Answer:
        scope = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.4"},
            "http_version": "1.1",
            "method": method,
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "query_string": b"",
            "root_path": "",
            "headers": headers,
            "client": ("127.0.0.1", 40000),
            "server": ("127.0.0.1", 8000),
        }
        delivered = False
        sent: list[dict[str, Any]] = []

        async def receive() -> dict[str, Any]:
            nonlocal delivered
            if delivered:  # the client stays connected until the response is over
                await asyncio.Event().wait()
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        try:
            await self.app(scope, receive, send)
        except Exception:  # Starlette re-raises after it sent the 500 (for the server's log)
            if not sent:
                raise
        start = sent[0]
        assert start["type"] == "http.response.start"
        body_out = b"".join(m.get("body", b"") for m in sent[1:])
        return start["status"], list(start.get("headers", [])), body_out


@pytest.fixture(scope="module")
def gateway() -> Iterator[Gateway]:
    with running(FakeUpstream("small"), FakeUpstream("large")) as (small, large):
        engine = Engine(parse_config(_config(small.base_url, large.base_url)))
        with TestClient(create_app(engine)) as client:
            yield Gateway(client)


def check_answer(answer: Answer) -> dict[str, Any]:
    """Not a 5xx; a 4xx is exactly the OpenAI error shape with nothing internal in it."""
    status, headers, body = answer
    assert status < 500, body
    assert (b"content-type", b"application/json") in headers, headers
    for leak in LEAKS:
        assert leak not in body, body
    parsed = orjson.loads(body)
    if status >= 400:
        assert set(parsed) == {"error"}
        error = parsed["error"]
        assert set(error) == {"message", "type", "code", "param"}
        assert isinstance(error["message"], str) and isinstance(error["type"], str)
        assert isinstance(error["code"], str)
        assert error["param"] is None or isinstance(error["param"], str)
    return parsed  # type: ignore[no-any-return]


# header names the app reads, and some it should not care about
READ_NAMES = [b"x-tier", b"content-type", b"host", b"accept", b"user-agent", b"expect"]
OTHER_NAMES = [b"transfer-encoding", b"cookie", b"x-forwarded-for", b"connection", b"te"]
AUTH_NAMES = {b"authorization", b"x-api-key", b"content-length"}
header_values = st.one_of(
    st.binary(max_size=64),
    st.sampled_from([b"gold", b"\xff\xfe", b"\xc3\x28", b"\xed\xa0\x80", b"\x00", b"\r\n", b" "]),
    st.integers(1, 64).map(lambda k: b"\xe9" * (k * 1024)),  # up to 64 KiB of latin-1
)
header_names = st.one_of(
    st.sampled_from(READ_NAMES + OTHER_NAMES),
    st.binary(min_size=1, max_size=24).map(bytes.lower).filter(lambda n: n not in AUTH_NAMES),
)
extra_headers = st.lists(st.tuples(header_names, header_values), max_size=12)
# (headers that present a key, whether the key is right)
presented = st.one_of(
    st.just(([(b"authorization", b"Bearer " + KEY.encode())], True)),
    st.just(([(b"x-api-key", KEY.encode())], True)),
    st.just(([], False)),
    st.tuples(st.sampled_from([b"authorization", b"x-api-key"]), st.binary(max_size=80)).map(
        lambda h: ([h], False)
    ),
    st.binary(max_size=80).map(lambda v: ([(b"authorization", b"Bearer " + v)], False)),
)


@SETTINGS
@given(
    extra=extra_headers, auth=presented, path=st.sampled_from(["/v1/chat/completions", "/v1/route"])
)
def test_header_garbage_never_500_and_never_lets_in(
    gateway: Gateway, extra: Headers, auth: tuple[Headers, bool], path: str
) -> None:
    auth_headers, valid = auth
    answer = gateway.call("POST", path, extra + auth_headers, CHAT)
    check_answer(answer)
    assert answer[0] == (200 if valid else 401), answer


@SETTINGS
@given(extra=extra_headers)
def test_header_garbage_on_probes_and_unknown_paths(gateway: Gateway, extra: Headers) -> None:
    for method, path, status in [
        ("GET", "/healthz", 200),
        ("GET", "/readyz", 200),
        ("GET", "/openapi.json", 200),
        ("GET", "/v1/nope", 404),
        ("GET", "/v1/chat/completions", 405),
    ]:
        answer = gateway.call(method, path, extra)
        check_answer(answer)
        assert answer[0] == status


def test_routing_header_reaches_the_router(gateway: Gateway) -> None:
    auth = [(b"authorization", b"Bearer " + KEY.encode())]
    gold = check_answer(gateway.call("POST", "/v1/route", [(b"x-tier", b"gold"), *auth], CHAT))
    assert gold["decision"] == "gold"
    latin = [(b"x-tier", b"g\xf6ld\xff"), *auth]
    other = check_answer(gateway.call("POST", "/v1/route", latin, CHAT))
    assert other["decision"] == "default"
    assert other["signals"]["tier"] == "g\xf6ld\xff"  # latin-1 decoded, as Starlette does


@pytest.mark.parametrize(
    "value",
    [b"", b"abc", b"-1", b"1.5", b"0x10", b" 45", b"45, 45", b"99999999999", b"9" * 4000],
    ids=["empty", "abc", "negative", "float", "hex", "space", "list", "huge", "4000-digits"],
)
def test_odd_content_length_is_not_a_500(gateway: Gateway, value: bytes) -> None:
    auth = [(b"authorization", b"Bearer " + KEY.encode())]
    answer = gateway.call("POST", "/v1/chat/completions", [(b"content-length", value), *auth], CHAT)
    check_answer(answer)
    assert answer[0] in (200, 413)


@pytest.mark.parametrize(
    "value",
    [b"\xb2", b"\xb9\xb2\xb3", b"9" * 5000],
    ids=["superscript-2", "superscripts", "5000-digits"],
)
def test_content_length_int_edge_cases(gateway: Gateway, value: bytes) -> None:
    auth = [(b"authorization", b"Bearer " + KEY.encode())]
    answer = gateway.call("POST", "/v1/chat/completions", [(b"content-length", value), *auth], CHAT)
    check_answer(answer)
