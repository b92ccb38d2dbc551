"""A controllable, misbehaving OpenAI-compatible upstream, run as its own process.

    python tests/faults/chaos_upstream.py --port P

Loopback only.  The fault is chosen per request by the URL path, so one process
serves every backend of a gateway config::

    base_url: http://127.0.0.1:P/fault/<mode>[/<key>=<value>...]/v1

The spec (everything between ``/fault/`` and ``/v1``) is also the key of the
request counters; a ``t=<tag>`` parameter does nothing but give a backend its own
counters.  Modes (``chunks``, ``gap``... are parameters):

=========== ===================================================================
ok          a chat/text completion; for ``stream: true`` ``chunks`` SSE chunks
            then ``data: [DONE]``; ``pad=N`` adds N bytes to the content (of
            each chunk)
status      ``code`` (default 503) with an OpenAI error body; ``retry_after``
            adds a Retry-After header; ``first=N`` fails only the first N
            requests of this spec, then answers like ``ok``
hang        reads the request, never answers (holds the connection)
reset       reads the request head, then resets the connection (SO_LINGER 0)
cut         plain: Content-Length announced, half of the body, close;
            stream: ``chunks`` chunks (default 2), then close without [DONE]
            and without the chunked-encoding terminator
stall       stream: ``chunks`` chunks (default 1), then nothing, connection open
trickle     headers at once, then the body (plain) or the SSE bytes (stream)
            one byte at a time, ``gap`` seconds apart (default 0.05)
drip        stream: a valid chunk every ``gap`` s (default 0.2), up to ``max``
            chunks (default 300), then [DONE]; a stream that never stops
slowfirst   stream: headers after ``head`` s, the first chunk ``first`` s later
malformed   plain: 200 application/json that is not JSON; stream: the first
            ``data:`` line is not JSON (``chunks=N`` puts N good chunks first)
errevent    stream: ``chunks`` good chunks then ``data: {"error": ...}``, close
error200    plain: 200 application/json ``{"error": {...}}``; stream: an error
            event before any chunk
html        200 text/html (plain and stream requests alike)
plainjson   a complete non-streaming JSON completion, also to stream requests
huge        200 with a body of ``mib`` MiB (default 33): valid JSON padding,
            with Content-Length when ``length=1``, else chunked; for stream
            requests one ``data:`` line of that size (no newline)
switch      the behaviour of ``POST /switch/<name>`` (default ``ok``), for
            faults that must start or stop during a test
=========== ===================================================================

Connection-level faults need a port of their own, because choosing by path
means reading the request: ``GET /ports`` names three extra loopback ports,
``noread`` (accepts connections, never reads or answers), ``reset_accept``
(accepts and resets at once) and ``refused`` (bound but not listening, so
connecting is refused, and no other process can take the port meanwhile).

``GET /stats`` -> ``{"requests": {spec: n}, "open": {spec: n}, "connections":
{listener: n}}``: requests received per spec, requests still being handled, and
connections accepted by the connection-level listeners.  ``POST /switch/<name>``
with a spec as body (e.g. ``status/code=503``) sets what ``switch/name=<name>``
does from then on.

Every wait is bounded (``HOLD_S``); SIGTERM ends the process.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import socket
import struct
from collections import Counter
from typing import Any

HOST = "127.0.0.1"
HOLD_S = 60.0  # the longest any connection is held open on purpose
MAX_HEAD = 64 * 1024
MAX_BODY = 8 * 1024 * 1024
MIB = 1024 * 1024

requests: Counter[str] = Counter()
in_progress: Counter[str] = Counter()
connections: Counter[str] = Counter()
switches: dict[str, str] = {}
extra_ports: dict[str, int] = {}


class Closed(Exception):
    """The connection must not be reused (or is gone)."""


# --------------------------------------------------------------------------- HTTP plumbing


async def read_request(
    reader: asyncio.StreamReader,
) -> tuple[str, str, dict[str, str], bytes] | None:
    """One HTTP/1.1 request (method, path, lower-case headers, body); None at EOF or
    when an idle keep-alive connection sent nothing for HOLD_S."""
    try:
        async with asyncio.timeout(HOLD_S):
            raw = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, TimeoutError):
        return None
    except asyncio.LimitOverrunError as exc:
        raise Closed("request head too large") from exc
    if len(raw) > MAX_HEAD:
        raise Closed("request head too large")
    lines = raw.decode("latin-1").split("\r\n")
    method, path, _ = lines[0].split(" ", 2)
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if ":" in line:
            name, value = line.split(":", 1)
            headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0") or 0)
    if length > MAX_BODY:
        raise Closed("request body too large")
    body = await reader.readexactly(length) if length else b""
    return method, path, headers, body


def head(
    status: int,
    ctype: str,
    length: int | None = None,
    chunked: bool = False,
    extra: dict[str, str] | None = None,
    close: bool = False,
) -> bytes:
    reason = {200: "OK", 404: "Not Found", 429: "Too Many Requests"}.get(status, "Error")
    lines = [f"HTTP/1.1 {status} {reason}", f"Content-Type: {ctype}"]
    if length is not None:
        lines.append(f"Content-Length: {length}")
    if chunked:
        lines.append("Transfer-Encoding: chunked")
    if close:
        lines.append("Connection: close")
    lines += [f"{k}: {v}" for k, v in (extra or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def chunk(data: bytes) -> bytes:
    """One piece of a chunked-encoded body."""
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


LAST_CHUNK = b"0\r\n\r\n"


async def send(writer: asyncio.StreamWriter, data: bytes) -> None:
    writer.write(data)
    await writer.drain()


async def respond(
    writer: asyncio.StreamWriter,
    status: int,
    body: bytes,
    ctype: str = "application/json",
    extra: dict[str, str] | None = None,
) -> None:
    await send(writer, head(status, ctype, len(body), extra=extra) + body)


def rst(writer: asyncio.StreamWriter) -> None:
    """Close with a TCP reset instead of a FIN."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


async def hold(reader: asyncio.StreamReader) -> None:
    """Keep the connection open, unanswered, until the client goes away (bounded)."""
    with contextlib.suppress(TimeoutError, ConnectionError):
        async with asyncio.timeout(HOLD_S):
            while await reader.read(65536):
                pass


# --------------------------------------------------------------------------- bodies


def completion(body: dict[str, Any], path: str, text: str = "hello from chaos") -> bytes:
    model = str(body.get("model", "chaos"))
    if path.endswith("/completions") and not path.endswith("/chat/completions"):
        obj: dict[str, Any] = {
            "id": "cmpl-chaos",
            "object": "text_completion",
            "created": 1,
            "model": model,
            "choices": [{"index": 0, "text": text, "finish_reason": "stop"}],
        }
    else:
        obj = {
            "id": "chatcmpl-chaos",
            "object": "chat.completion",
            "created": 1,
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 3, "completion_tokens": 3, "total_tokens": 6},
        }
    return json.dumps(obj).encode()


def sse_chunk(body: dict[str, Any], i: int, last: bool = False, pad: int = 0) -> bytes:
    obj = {
        "id": "chatcmpl-chaos",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": str(body.get("model", "chaos")),
        "choices": [
            {
                "index": 0,
                "delta": {"content": f"tok{i} " + "x" * pad},
                "finish_reason": "stop" if last else None,
            }
        ],
    }
    return b"data: " + json.dumps(obj).encode() + b"\n\n"


SSE_DONE = b"data: [DONE]\n\n"
SSE_HEAD = head(200, "text/event-stream", chunked=True, extra={"Cache-Control": "no-cache"})


def error_json(message: str) -> bytes:
    return json.dumps({"error": {"message": message, "type": "chaos", "code": None}}).encode()


# --------------------------------------------------------------------------- faults


def parse_spec(spec: str) -> tuple[str, dict[str, str]]:
    mode, *rest = spec.split("/")
    params = dict(p.split("=", 1) for p in rest if "=" in p)
    return mode, params


async def fault(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    spec: str,
    path: str,
    body: dict[str, Any],
) -> None:
    """Answer one request on ``spec``'s terms; raises ``Closed`` if the connection is done."""
    mode, p = parse_spec(spec)
    if mode == "switch":
        mode, p = parse_spec(switches.get(p.get("name", ""), "ok"))
    stream = body.get("stream") is True
    chunks = int(p.get("chunks", "3"))

    if mode == "status":
        first = p.get("first")
        if first is None or requests[spec] <= int(first):
            extra = {"Retry-After": p["retry_after"]} if "retry_after" in p else None
            code = int(p.get("code", "503"))
            await respond(writer, code, error_json(f"chaos {code}"), extra=extra)
            return
        mode = "ok"

    if mode == "ok":
        pad = int(p.get("pad", "0"))
        if not stream:
            await respond(writer, 200, completion(body, path, "hello from chaos" + "x" * pad))
            return
        await send(writer, SSE_HEAD)
        for i in range(chunks):
            await send(writer, chunk(sse_chunk(body, i, last=i == chunks - 1, pad=pad)))
        await send(writer, chunk(SSE_DONE) + LAST_CHUNK)
        return

    if mode == "hang":
        await hold(reader)
        raise Closed(mode)

    if mode == "reset":
        rst(writer)
        raise Closed(mode)

    if mode == "cut":
        if not stream:
            data = completion(body, path)
            await send(writer, head(200, "application/json", len(data)) + data[: len(data) // 2])
        else:
            await send(writer, SSE_HEAD)
            for i in range(int(p.get("chunks", "2"))):
                await send(writer, chunk(sse_chunk(body, i)))
        if p.get("how") == "rst":
            rst(writer)
        raise Closed(mode)

    if mode == "stall":
        await send(writer, SSE_HEAD)
        for i in range(int(p.get("chunks", "1"))):
            await send(writer, chunk(sse_chunk(body, i)))
        await hold(reader)
        raise Closed(mode)

    if mode == "trickle":
        gap = float(p.get("gap", "0.05"))
        if stream:
            await send(writer, SSE_HEAD)
            data = b"".join(sse_chunk(body, i, last=i == chunks - 1) for i in range(chunks))
            data += SSE_DONE
            for i in range(len(data)):
                await send(writer, chunk(data[i : i + 1]))
                await asyncio.sleep(gap)
            await send(writer, LAST_CHUNK)
        else:
            data = completion(body, path)
            await send(writer, head(200, "application/json", len(data)))
            for i in range(len(data)):
                await send(writer, data[i : i + 1])
                await asyncio.sleep(gap)
        return

    if mode == "drip":
        gap = float(p.get("gap", "0.2"))
        await send(writer, SSE_HEAD)
        for i in range(int(p.get("max", "300"))):
            await send(writer, chunk(sse_chunk(body, i)))
            await asyncio.sleep(gap)
        await send(writer, chunk(SSE_DONE) + LAST_CHUNK)
        return

    if mode == "slowfirst":
        await asyncio.sleep(float(p.get("head", "0.7")))
        await send(writer, SSE_HEAD)
        await asyncio.sleep(float(p.get("first", "0.7")))
        for i in range(chunks):
            await send(writer, chunk(sse_chunk(body, i, last=i == chunks - 1)))
        await send(writer, chunk(SSE_DONE) + LAST_CHUNK)
        return

    if mode == "malformed":
        if not stream:
            await respond(writer, 200, b'{"id": "chatcmpl-chaos", "choices": [{"inde')
            return
        await send(writer, SSE_HEAD)
        for i in range(int(p.get("chunks", "0"))):
            await send(writer, chunk(sse_chunk(body, i)))
        await send(writer, chunk(b'data: {"id": "chatcmpl-chaos", "choi\n\n'))
        await send(writer, chunk(SSE_DONE) + LAST_CHUNK)
        return

    if mode == "errevent":
        await send(writer, SSE_HEAD)
        for i in range(int(p.get("chunks", "2"))):
            await send(writer, chunk(sse_chunk(body, i)))
        await send(writer, chunk(b"data: " + error_json("chaos: model crashed") + b"\n\n"))
        await send(writer, LAST_CHUNK)
        return

    if mode == "error200":
        if not stream:
            await respond(writer, 200, error_json("chaos: an error object with status 200"))
            return
        await send(writer, SSE_HEAD)
        await send(writer, chunk(b"data: " + error_json("chaos: error event first") + b"\n\n"))
        await send(writer, LAST_CHUNK)
        return

    if mode == "html":
        page = b"<!doctype html><html><body><h1>502 Bad Gateway</h1></body></html>"
        await respond(writer, 200, page, ctype="text/html; charset=utf-8")
        return

    if mode == "plainjson":
        await respond(writer, 200, completion(body, path))
        return

    if mode == "huge":
        await huge(writer, body, stream, int(p.get("mib", "33")), p.get("length") == "1")
        raise Closed(mode)

    await respond(writer, 404, error_json(f"chaos: unknown mode {mode!r}"))


async def huge(
    writer: asyncio.StreamWriter, body: dict[str, Any], stream: bool, mib: int, length: bool
) -> None:
    if stream:  # one ``data:`` line that never ends
        prefix, suffix, ctype = b'data: {"pad": "', b"", "text/event-stream"
    else:  # valid JSON, only too big
        prefix, suffix, ctype = b'{"id": "chatcmpl-chaos", "pad": "', b'"}', "application/json"
    size = mib * MIB
    pad = size - len(prefix) - len(suffix)

    def frame(data: bytes) -> bytes:
        return data if length else chunk(data)

    await send(writer, head(200, ctype, size if length else None, chunked=not length))
    await send(writer, frame(prefix))
    block = b"a" * MIB
    sent = 0
    while sent < pad:
        piece = block[: min(MIB, pad - sent)]
        await send(writer, frame(piece))
        sent += len(piece)
    if suffix:
        await send(writer, frame(suffix))
    if not length:
        await send(writer, LAST_CHUNK)


# --------------------------------------------------------------------------- servers


async def control(writer: asyncio.StreamWriter, method: str, path: str, raw_body: bytes) -> None:
    if method == "GET" and path == "/stats":
        stats = {
            "requests": dict(requests),
            "open": {k: v for k, v in in_progress.items() if v},
            "connections": dict(connections),
        }
        await respond(writer, 200, json.dumps(stats).encode())
    elif method == "GET" and path == "/ports":
        await respond(writer, 200, json.dumps(extra_ports).encode())
    elif method == "POST" and path.startswith("/switch/"):
        switches[path.removeprefix("/switch/")] = raw_body.decode().strip()
        await respond(writer, 200, b'{"ok": true}')
    else:
        await respond(writer, 404, error_json(f"chaos: no route {method} {path}"))


async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Serve requests on one connection until a fault ends it or the client leaves."""
    try:
        while True:
            request = await read_request(reader)
            if request is None:
                return
            method, path, headers, raw_body = request
            path = path.split("?", 1)[0]
            if not path.startswith("/fault/") or "/v1/" not in path:
                await control(writer, method, path, raw_body)
                continue
            spec = path.removeprefix("/fault/").split("/v1/", 1)[0]
            requests[spec] += 1
            in_progress[spec] += 1
            try:
                try:
                    body = json.loads(raw_body) if raw_body else {}
                except ValueError:
                    body = {}
                await fault(reader, writer, spec, path, body if isinstance(body, dict) else {})
            finally:
                in_progress[spec] -= 1
            if headers.get("connection", "").lower() == "close":
                return
    except (Closed, ConnectionError, OSError, asyncio.IncompleteReadError):
        pass
    finally:
        writer.close()


def listener() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((HOST, 0))
    sock.listen(128)
    sock.setblocking(False)
    return sock


async def never_read(sock: socket.socket) -> None:
    """Accept connections and hold them: never read, never answer, close after HOLD_S."""
    loop = asyncio.get_running_loop()
    while True:
        conn, _ = await loop.sock_accept(sock)
        connections["noread"] += 1
        loop.call_later(HOLD_S, conn.close)


async def reset_on_accept(sock: socket.socket) -> None:
    """Accept connections and reset each at once."""
    loop = asyncio.get_running_loop()
    while True:
        conn, _ = await loop.sock_accept(sock)
        connections["reset_accept"] += 1
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        conn.close()


async def main(port: int) -> None:
    server = await asyncio.start_server(handle, HOST, port, limit=MAX_HEAD)
    noread, reset = listener(), listener()
    refused = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    refused.bind((HOST, 0))  # never listen(): connecting gets a RST (ECONNREFUSED)
    extra_ports["noread"] = noread.getsockname()[1]
    extra_ports["reset_accept"] = reset.getsockname()[1]
    extra_ports["refused"] = refused.getsockname()[1]
    print(f"chaos upstream on {HOST}:{port} {json.dumps(extra_ports)}", flush=True)
    tasks = [asyncio.create_task(never_read(noread)), asyncio.create_task(reset_on_accept(reset))]
    async with server:
        await server.serve_forever()
    for task in tasks:
        task.cancel()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main(args.port))
