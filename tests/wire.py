"""Raw HTTP/1.1 on loopback sockets: send bytes, read framed answers, check them.

Shared by the wire-level tiers (``tests/server/test_fuzz_http.py``,
``tests/server/test_red_team.py``).
"""

from __future__ import annotations

import contextlib
import socket
import time
from dataclasses import dataclass

import orjson
from procs import LOOPBACK

CHAT = b'{"messages":[{"role":"user","content":"hi"}]}'
LEAKS = (b"Traceback", b'File "', b"site-packages", b"/polyroute/", b"Exception")


@dataclass
class Answer:
    status: int
    headers: dict[bytes, bytes]
    body: bytes
    raw: bytes


def parse(raw: bytes) -> Answer:
    head, sep, body = raw.partition(b"\r\n\r\n")
    assert sep, f"no complete response: {raw[:200]!r}"
    lines = head.split(b"\r\n")
    status = int(lines[0].split(b" ")[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        headers[name.strip().lower()] = value.strip()
    return Answer(status, headers, body, raw)


def exchange(port: int, data: bytes, timeout_s: float = 10.0, responses: int = 1) -> list[Answer]:
    """Send ``data`` on a fresh connection; read ``responses`` responses (Content-Length framed)."""
    answers: list[Answer] = []
    with socket.create_connection((LOOPBACK, port), timeout=timeout_s) as sock:
        with contextlib.suppress(OSError):  # the server may answer and close before it all went
            sock.sendall(data)
        buf = b""
        deadline = time.monotonic() + timeout_s
        while len(answers) < responses and time.monotonic() < deadline:
            head_end = buf.find(b"\r\n\r\n")
            if head_end >= 0 and buf.startswith(b"HTTP/1.1 1"):  # 100 Continue: not the answer
                buf = buf[head_end + 4 :]
                continue
            if head_end >= 0:
                answer = parse(buf)
                length = int(answer.headers.get(b"content-length", b"-1"))
                if length >= 0 and len(answer.body) >= length:
                    answers.append(parse(buf[: head_end + 4 + length]))
                    buf = buf[head_end + 4 + length :]
                    continue
            try:
                chunk = sock.recv(65536)
            except (ConnectionResetError, TimeoutError):
                chunk = b""
            if not chunk:
                break
            buf += chunk
        if len(answers) < responses and buf:
            answers.append(parse(buf))
    assert len(answers) == responses, f"{len(answers)} of {responses} responses: {buf[:200]!r}"
    return answers


def request(
    body: bytes = CHAT,
    headers: bytes = b"",
    path: bytes = b"/v1/route",
    framing: bytes | None = None,
) -> bytes:
    if framing is None:
        framing = b"Content-Length: %d\r\n" % len(body)
    return b"POST " + path + b" HTTP/1.1\r\nHost: gw\r\n" + framing + headers + b"\r\n" + body


def chunked(body: bytes, size: int) -> bytes:
    parts = [body[i : i + size] for i in range(0, len(body), size)]
    return b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in parts) + b"0\r\n\r\n"


def refused_by_http_layer(answer: Answer, status: int = 400) -> bool:
    """The HTTP layer refused the request before the app saw it: a JSON error that closes
    the connection (400 ``bad_http_request``; 431 for an oversized head)."""
    code = b"bad_http_request" if status == 400 else b"request_header_fields_too_large"
    return (
        answer.status == status
        and answer.headers.get(b"connection") == b"close"
        and b'"code":"' + code + b'"' in answer.body
    )


def check(answer: Answer) -> None:
    """200 or an OpenAI-style JSON error -- never a 5xx, never plain text."""
    assert answer.status < 500, answer.raw[:500]
    for leak in LEAKS:
        assert leak not in answer.body, answer.raw[:500]
    assert answer.headers[b"content-type"] == b"application/json", answer.raw[:500]
    parsed = orjson.loads(answer.body)
    if answer.status >= 400:
        assert set(parsed) == {"error"}
        assert set(parsed["error"]) == {"message", "type", "code", "param"}
