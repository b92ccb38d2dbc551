"""Hostile HTTP on the wire: a real ``polyroute serve`` over raw sockets.

The gateway runs uvicorn + httptools with its own protocol class
(``polyroute.server.protocol``), and these tests pin down what that gives:

* header values: SP, HTAB, visible ASCII and obs-text (``\\x80``-``\\xff``) pass and reach
  the app latin-1 decoded; any other control byte and any non-token byte in a name is
  refused with a JSON 400 ``bad_http_request`` and the connection is closed;
* malformed framing (bad or duplicate Content-Length, Transfer-Encoding with
  Content-Length, bad chunk sizes, garbage request lines) gets the same JSON 400;
* header size: a request head (request line and headers) over ``server.max_header_bytes``
  (64 KiB by default) gets a JSON **431** as soon as the bytes pass the limit, without
  waiting for the head to end.  Plain httptools has no limit at all (measured by hand:
  a 64 MiB header took 8 s, 256 MiB 93 s of server CPU, and memory grew with it);
* whatever happens, never a 5xx, never a traceback in a response, and ``/healthz``
  answers afterwards.
"""

from __future__ import annotations

import contextlib
import hashlib
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml
from fakes import FakeUpstream, gateway_config, running
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from procs import (
    GATEWAY_READY_TIMEOUT_S,
    LOOPBACK,
    Proc,
    free_port,
    gateway_argv,
    start_gateway,
    start_process,
)
from wire import (
    CHAT,
    Answer,
    check,
    chunked,
    exchange,
    parse,
    refused_by_http_layer,
    request,
)

LIMIT = 64 * 1024  # server.max_body_bytes of the gateway under test
BODY_TIMEOUT_S = 1.0
HEAD_TIMEOUT_S = 1.5


@dataclass
class Served:
    proc: Proc

    @property
    def port(self) -> int:
        return self.proc.port

    def assert_up(self, timeout_s: float = 10.0) -> float:
        """/healthz answers 200 on a fresh connection; returns how long it took."""
        assert self.proc.alive(), self.proc.log_tail()
        started = time.monotonic()
        data = b"GET /healthz HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n"
        answer = exchange(self.port, data, timeout_s)[0]
        assert answer.status == 200 and answer.body == b'{"status":"ok"}'
        return time.monotonic() - started


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    logs: Path = tmp_path_factory.mktemp("fuzz-http")
    with running(FakeUpstream("small"), FakeUpstream("large")) as (small, large):
        config = gateway_config(
            small.base_url,
            large.base_url,
            max_body_bytes=LIMIT,
            body_timeout_s=BODY_TIMEOUT_S,
            head_timeout_s=HEAD_TIMEOUT_S,
        )
        proc = start_gateway("gateway", config, logs)
        try:
            yield Served(proc)
        finally:
            proc.stop()


# ------------------------------------------------------------------ header bytes


def allowed_value(value: bytes) -> bool:
    """RFC 9110 field-value bytes (plus obs-text), which httptools lets through."""
    return all(b == 9 or 32 <= b <= 126 or b >= 128 for b in value)


FRAMING = {b"content-length", b"transfer-encoding"}  # tested on their own below
TOKEN = b"!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
header_names = st.one_of(
    st.sampled_from([b"Authorization", b"X-Api-Key", b"User-Agent", b"X-Tier", b"Accept"]),
    st.binary(min_size=1, max_size=16).filter(
        lambda n: all(b in TOKEN for b in n) and n.lower() not in FRAMING
    ),
)
header_values = st.one_of(
    st.binary(max_size=80).filter(lambda v: b"\r" not in v and b"\n" not in v),
    st.sampled_from([b"\xff\xfe", b"\xc3\x28", b"\xed\xa0\x80", b"caf\xc3\xa9", b"\xe9t\xe9"]),
)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    name=header_names,
    value=header_values,
    path=st.sampled_from([b"/v1/route", b"/v1/chat/completions"]),
)
def test_header_bytes_on_the_wire(served: Served, name: bytes, value: bytes, path: bytes) -> None:
    """Invalid UTF-8 / latin-1 / control bytes in header values of a real request."""
    answer = exchange(served.port, request(path=path, headers=name + b": " + value + b"\r\n"))[0]
    check(answer)
    if allowed_value(value.strip(b" \t")):
        assert answer.status == 200, answer.raw[:300]
    else:
        assert refused_by_http_layer(answer), answer.raw[:300]


@pytest.mark.parametrize(
    "header",
    [
        b"Authorization: Bearer \xff\xfe\xfd\r\n",
        b"X-Api-Key: \xc3\x28\xa0\xa1\r\n",
        b"User-Agent: \xed\xa0\x80\xf0\x28\x8c\x28\r\n",
        b"Content-Type: application/json; charset=\xff\r\n",
        b"Host: \xff\r\n",
        b"Expect: 100-continue\r\n",
        b"Connection: \xff, close\r\n",
    ],
)
def test_latin1_header_values_pass(served: Served, header: bytes) -> None:
    answer = exchange(served.port, request(headers=header))[0]
    check(answer)
    assert answer.status == 200


# ------------------------------------------------------------------ malformed HTTP

MALFORMED = {
    "nul in value": request(headers=b"X-Foo: a\x00b\r\n"),
    "del in value": request(headers=b"X-Foo: a\x7fb\r\n"),
    "space in name": request(headers=b"X Foo: a\r\n"),
    "latin-1 name": request(headers=b"X-\xff: a\r\n"),
    "obs-fold": request(headers=b"X-Foo: a\r\n  b\r\n"),
    "bare LF in value": request(headers=b"X-Foo: a\nb\r\n"),
    "CL not a number": request(framing=b"Content-Length: abc\r\n"),
    "CL negative": request(framing=b"Content-Length: -1\r\n"),
    "CL superscript two": request(framing=b"Content-Length: \xb2\r\n"),
    "CL 5000 digits": request(framing=b"Content-Length: " + b"9" * 5000 + b"\r\n"),
    "CL past u64": request(framing=b"Content-Length: 18446744073709551616\r\n"),
    "CL twice, different": request(framing=b"Content-Length: 45\r\nContent-Length: 46\r\n"),
    "CL list": request(framing=b"Content-Length: 45, 45\r\n"),
    "TE and CL": request(
        CHAT, framing=b"Transfer-Encoding: chunked\r\nContent-Length: %d\r\n" % len(CHAT)
    ),
    "TE gzip": request(framing=b"Transfer-Encoding: gzip\r\n"),
    "bad chunk size": request(
        b"zz\r\n" + CHAT + b"\r\n0\r\n\r\n", framing=b"Transfer-Encoding: chunked\r\n"
    ),
    "chunk longer than said": request(
        b"2\r\n" + CHAT + b"\r\n0\r\n\r\n", framing=b"Transfer-Encoding: chunked\r\n"
    ),
    "TLS hello": b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 64,
    "bad request line": b"POST  /v1/route HTTP/9.9\r\n\r\n",
    "HTTP/2 preface": b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
}


def test_a_url_over_the_head_limit_is_a_431(served: Served) -> None:
    """The request line counts towards the head limit, even when the head ends in one read."""
    answer = exchange(served.port, b"GET /" + b"a" * 65536 + b" HTTP/1.1\r\nHost: gw\r\n\r\n")[0]
    check(answer)
    assert refused_by_http_layer(answer, 431), answer.raw[:300]
    served.assert_up()


@pytest.mark.parametrize("data", list(MALFORMED.values()), ids=list(MALFORMED))
def test_malformed_http_is_a_json_400(served: Served, data: bytes) -> None:
    answer = exchange(served.port, data)[0]
    check(answer)
    assert refused_by_http_layer(answer), answer.raw[:300]
    served.assert_up()


def test_request_line_without_version_is_answered(served: Served) -> None:
    """httptools takes ``GET /healthz`` (HTTP/0.9 style) as a request and closes after it."""
    answer = exchange(served.port, b"GET /healthz\r\n\r\n")[0]
    check(answer)
    assert answer.status == 200 and answer.headers[b"connection"] == b"close"


def test_long_url_under_64k_is_an_app_404(served: Served) -> None:
    answer = exchange(served.port, b"GET /" + b"a" * 60000 + b" HTTP/1.1\r\nHost: gw\r\n\r\n")[0]
    check(answer)
    assert answer.status == 404


# ------------------------------------------------------------------ bodies and framing


@pytest.mark.parametrize("size", [1, 7, 4096])
def test_chunked_bodies_are_read(served: Served, size: int) -> None:
    data = request(chunked(CHAT, size), framing=b"Transfer-Encoding: chunked\r\n")
    answer = exchange(served.port, data)[0]
    check(answer)
    assert answer.status == 200


def test_chunked_body_over_the_limit_is_413(served: Served) -> None:
    big = b'{"messages":[{"role":"user","content":"' + b"x" * LIMIT + b'"}]}'
    data = request(chunked(big, 8192), framing=b"Transfer-Encoding: chunked\r\n")
    answer = exchange(served.port, data)[0]
    check(answer)
    assert answer.status == 413


def test_declared_length_over_the_limit_is_413_without_the_body(served: Served) -> None:
    data = request(b"", framing=b"Content-Length: %d\r\n" % (LIMIT + 1))  # no body follows
    started = time.monotonic()
    answer = exchange(served.port, data, timeout_s=5)[0]
    check(answer)
    assert answer.status == 413
    assert time.monotonic() - started < BODY_TIMEOUT_S  # refused on the header alone


def test_body_shorter_than_declared_times_out_408(served: Served) -> None:
    data = request(CHAT[:10], framing=b"Content-Length: %d\r\n" % len(CHAT))
    answer = exchange(served.port, data, timeout_s=BODY_TIMEOUT_S + 10)[0]
    check(answer)
    assert answer.status == 408


def test_client_leaving_mid_body_leaves_the_server_up(served: Served) -> None:
    for _ in range(5):
        with socket.create_connection((LOOPBACK, served.port), timeout=5) as sock:
            sock.sendall(request(CHAT[:10], framing=b"Content-Length: 1000\r\n"))
    served.assert_up()


def test_pipelined_requests_each_get_an_answer(served: Served) -> None:
    good = request()
    answers = exchange(served.port, good + request(b"{nope") + good, responses=3)
    for answer in answers:
        check(answer)
    assert [a.status for a in answers] == [200, 400, 200]


def test_garbage_after_a_good_request(served: Served) -> None:
    """Garbage pipelined in the same packet as a good request: the good one is answered
    first, then the garbage gets its 400 and the connection closes."""
    answers = exchange(served.port, request() + b"\x00\x01garbage\r\n\r\n", responses=2)
    for answer in answers:
        check(answer)
    assert [a.status for a in answers] == [200, 400]
    assert refused_by_http_layer(answers[1])
    served.assert_up()


def test_pipelined_posts_then_garbage_are_all_answered_in_order(served: Served) -> None:
    """Two valid POSTs and ``GARBAGE`` in one write: both POSTs ran upstream, so both are
    answered (in order), then the 400; none is lost (red-team finding 8)."""
    chat = request(path=b"/v1/chat/completions")
    answers = exchange(served.port, chat + chat + b"GARBAGE\r\n\r\n", responses=3)
    for answer in answers:
        check(answer)
    assert [a.status for a in answers] == [200, 200, 400]
    assert b"chat.completion" in answers[0].body and b"chat.completion" in answers[1].body
    assert answers[2].headers[b"connection"] == b"close"
    served.assert_up()


# ------------------------------------------------------------------ oversized headers


@pytest.mark.parametrize(
    "headers",
    [
        b"X-Big: " + b"a" * (1 << 20) + b"\r\n",
        b"X-Big: " + b"\xe9" * (16 << 20) + b"\r\n",
        b"Authorization: Bearer " + b"k" * (4 << 20) + b"\r\n",
        b"".join(b"X-H%d: v\r\n" % i for i in range(100_000)),
        b"X-Same: v\r\n" * 100_000,
    ],
    ids=["1MiB-value", "16MiB-latin1-value", "4MiB-bearer", "100k-headers", "100k-same-name"],
)
def test_oversized_headers_are_a_quick_431(served: Served, headers: bytes) -> None:
    started = time.monotonic()
    answer = exchange(served.port, request(headers=headers), timeout_s=30)[0]
    check(answer)
    assert refused_by_http_layer(answer, 431), answer.raw[:300]
    assert time.monotonic() - started < 5
    served.assert_up()


def test_a_head_just_under_the_limit_passes(served: Served) -> None:
    answer = exchange(served.port, request(headers=b"X-Big: " + b"a" * 60_000 + b"\r\n"))[0]
    check(answer)
    assert answer.status == 200


@pytest.mark.parametrize("size", [66_000, 100_000, 120_000])
def test_a_head_over_the_limit_in_one_write_is_a_431(served: Served, size: int) -> None:
    """Head and body in one write: the head is measured exactly, not by reads (finding 9)."""
    answer = exchange(served.port, request(headers=b"X-Big: " + b"a" * size + b"\r\n"))[0]
    check(answer)
    assert refused_by_http_layer(answer, 431), answer.raw[:300]


@pytest.mark.parametrize("piece", [4096, 1000, 65_000])
def test_a_head_over_the_limit_in_pieces_is_a_431(served: Served, piece: int) -> None:
    """However the bytes split, a head over 64 KiB is refused (finding 9: a 66,000-byte
    header in 4 KiB pieces used to pass)."""
    data = request(headers=b"X-Big: " + b"a" * 66_000 + b"\r\n")
    with socket.create_connection((LOOPBACK, served.port), timeout=10) as sock:
        with contextlib.suppress(OSError):
            for i in range(0, len(data), piece):
                sock.sendall(data[i : i + piece])
                time.sleep(0.002)
        raw = b""
        with contextlib.suppress(OSError):
            while chunk := sock.recv(65536):
                raw += chunk
    answer = parse(raw)
    check(answer)
    assert refused_by_http_layer(answer, 431), raw[:300]


def test_silent_and_trickling_connections_are_cut_off(served: Served) -> None:
    """A connection that sends nothing is closed, one that trickles a head byte by byte
    gets a JSON 408, both within ``head_timeout_s`` (finding 4: they stayed open for
    ever); a request on a fresh connection is answered meanwhile."""
    silent = [socket.create_connection((LOOPBACK, served.port), timeout=10) for _ in range(20)]
    trickle = socket.create_connection((LOOPBACK, served.port), timeout=10)
    head = b"GET /healthz HTTP/1.1\r\nHost: gw\r\nX-Slow: " + b"s" * 100
    started = time.monotonic()
    try:
        raw = b""
        for byte in head:  # one byte every 50 ms: the head would take 6 s
            try:
                trickle.sendall(bytes([byte]))
            except OSError:
                break
            trickle.settimeout(0.05)
            with contextlib.suppress(TimeoutError):
                raw += trickle.recv(65536)
            if raw:
                break
        trickle.settimeout(5)
        with contextlib.suppress(OSError):
            while chunk := trickle.recv(65536):
                raw += chunk
        took = time.monotonic() - started
        answer = parse(raw)
        check(answer)
        assert answer.status == 408 and b'"code":"request_timeout"' in answer.body
        assert took < HEAD_TIMEOUT_S + 2, took
        served.assert_up()
        for sock in silent:
            sock.settimeout(HEAD_TIMEOUT_S + 3)
            assert sock.recv(1) == b"", "the server closes a silent connection"
    finally:
        for sock in [*silent, trickle]:
            sock.close()


def test_header_flood_does_not_wedge_the_server(served: Served) -> None:
    """Four connections stream 8 MiB header values at once; /healthz keeps answering."""
    results: list[Any] = []

    def flood() -> None:
        try:
            headers = b"X-Flood: " + b"f" * (8 << 20) + b"\r\n"
            results.append(exchange(served.port, request(headers=headers), timeout_s=60)[0])
        except Exception as exc:  # reported below, in the test's thread
            results.append(exc)

    threads = [threading.Thread(target=flood) for _ in range(4)]
    for t in threads:
        t.start()
    worst = 0.0
    while any(t.is_alive() for t in threads):
        worst = max(worst, served.assert_up(timeout_s=20))
        time.sleep(0.05)
    for t in threads:
        t.join(60)
    assert len(results) == 4
    for result in results:
        assert isinstance(result, Answer), result
        check(result)
        assert refused_by_http_layer(result, 431), result.raw[:300]
    assert worst < 10, f"/healthz took {worst:.1f}s during the flood"
    served.assert_up()


def test_api_key_check_with_huge_and_odd_keys(tmp_path: Path) -> None:
    """Keys configured: odd bytes and huge keys are a 401, the right key a 200."""
    key = "pr-http-fuzz-0123456789abcdef0123456789abcdef"
    digest = hashlib.sha256(key.encode()).hexdigest()
    with running(FakeUpstream("small"), FakeUpstream("large")) as (small, large):
        config = gateway_config(small.base_url, large.base_url)
        config["server"]["api_keys"] = [{"name": "k", "sha256": digest}]
        config_path = tmp_path / "keys.yaml"
        config_path.write_text(yaml.safe_dump(config, sort_keys=False))
        port = free_port()
        proc = start_process(
            "gateway-keys", gateway_argv(config_path, port), port, "/healthz", tmp_path,
            GATEWAY_READY_TIMEOUT_S,
        )  # fmt: skip
        try:
            cases = [
                (b"Authorization: Bearer " + key.encode() + b"\r\n", {200}),
                (b"X-Api-Key: " + key.encode() + b"\r\n", {200}),
                (b"", {401}),
                (b"Authorization: Bearer \xff" + key.encode()[1:] + b"\r\n", {401}),
                (b"Authorization: Basic \xff\xfe\r\n", {401}),
                (b"Authorization: Bearer\r\n", {401}),
                (b"X-Api-Key: \t \r\n", {401}),
                (b"Authorization: Bearer " + b"\xe9" * (1 << 20) + b"\r\n", {431}),
            ]
            for headers, statuses in cases:
                answer = exchange(port, request(headers=headers))[0]
                check(answer)
                assert answer.status in statuses, (headers[:40], answer.raw[:300])
        finally:
            proc.stop()


def test_no_traceback_in_the_gateway_log(served: Served) -> None:
    """Runs last: nothing above made the gateway log an internal error."""
    served.assert_up()
    log = served.proc.log_path.read_text(errors="replace")
    assert "Traceback" not in log, served.proc.log_tail(80)
    assert "internal error" not in log, served.proc.log_tail(80)
    for line in log.splitlines():  # JSON lines only, uvicorn's warnings included
        assert isinstance(orjson.loads(line), dict), line
