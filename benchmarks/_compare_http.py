"""HTTP client pieces of ``bench_compare.py``: one checked request, never raising.

``send`` goes through an aiohttp session (keep-alive); ``raw_post`` is a bare
asyncio HTTP/1.1 client on a fresh connection, for the in-flight bursts, where
aiohttp's per-request client CPU would be measured instead of the server.
"""

from __future__ import annotations

import asyncio
import math
import time
from dataclasses import dataclass

import aiohttp
import orjson
from _compare_targets import REQUEST_TIMEOUT_S

JSON_HEADERS = {"content-type": "application/json"}


def check_chat(status: int, body: bytes) -> str | None:
    """None for a well-formed chat completion, else the error's label."""
    if status != 200:
        return f"HTTP {status}"
    try:
        content = orjson.loads(body)["choices"][0]["message"]["content"]
    except (orjson.JSONDecodeError, KeyError, IndexError, TypeError):
        return "malformed body"
    return None if isinstance(content, str) and content else "malformed body"


def check_stream(status: int, body: bytes) -> str | None:
    """None for a well-formed SSE chat stream (content chunks, then ``[DONE]``), else a label."""
    if status != 200:
        return f"HTTP {status}"
    events = [line[5:].strip() for line in body.split(b"\n") if line.startswith(b"data:")]
    if not events or events[-1] != b"[DONE]":
        return "stream without [DONE]"
    text = []
    try:
        for event in events[:-1]:
            chunk = orjson.loads(event)
            if "error" in chunk:
                return "stream error event"
            if chunk.get("choices"):
                text.append(chunk["choices"][0].get("delta", {}).get("content") or "")
    except (orjson.JSONDecodeError, AttributeError, IndexError, TypeError):
        return "malformed stream"
    return None if "".join(text) else "stream without content"


@dataclass
class Result:
    ms: float
    ttfb_ms: float
    error: str | None
    decision: str = ""


async def send(session: aiohttp.ClientSession, url: str, body: bytes, stream: bool) -> Result:
    """One POST, fully read and checked; never raises for an HTTP or network failure."""
    t0 = time.perf_counter()
    ttfb = math.nan
    try:
        async with session.post(url, data=body, headers=JSON_HEADERS) as r:
            if stream:
                first = await r.content.readany()
                ttfb = (time.perf_counter() - t0) * 1000
                chunks = [first]
                async for chunk in r.content.iter_any():
                    chunks.append(chunk)
                data = b"".join(chunks)
            else:
                data = await r.read()
            status = r.status
            decision = r.headers.get("x-polyroute-decision", "")
    except TimeoutError:
        return Result((time.perf_counter() - t0) * 1000, ttfb, "timeout")
    except aiohttp.ClientError as exc:
        return Result((time.perf_counter() - t0) * 1000, ttfb, type(exc).__name__)
    ms = (time.perf_counter() - t0) * 1000
    error = check_stream(status, data) if stream else check_chat(status, data)
    return Result(ms, ttfb, error, decision)


def client_session(limit: int, timeout_s: float = REQUEST_TIMEOUT_S) -> aiohttp.ClientSession:
    connector = aiohttp.TCPConnector(limit=limit, keepalive_timeout=60)
    return aiohttp.ClientSession(
        connector=connector, timeout=aiohttp.ClientTimeout(total=timeout_s), trust_env=False
    )


def _dechunk(data: bytes) -> bytes:
    """The payload of an HTTP/1.1 chunked body (raises ValueError if it is cut short)."""
    out: list[bytes] = []
    pos = 0
    while True:
        eol = data.index(b"\r\n", pos)
        size = int(data[pos:eol].split(b";", 1)[0], 16)
        if size == 0:
            return b"".join(out)
        start = eol + 2
        if start + size > len(data):
            raise ValueError("chunk cut short")
        out.append(data[start : start + size])
        pos = start + size + 2


def parse_response(raw: bytes) -> tuple[int, bytes]:
    """(status, body) of one HTTP/1.1 response read to EOF (``Connection: close``)."""
    head, sep, rest = raw.partition(b"\r\n\r\n")
    if not sep:
        raise ValueError("no complete header")
    lines = head.split(b"\r\n")
    status = int(lines[0].split(b" ", 2)[1])
    headers = {}
    for line in lines[1:]:
        key, _, value = line.partition(b":")
        headers[key.strip().lower()] = value.strip().lower()
    if headers.get(b"transfer-encoding") == b"chunked":
        return status, _dechunk(rest)
    length = headers.get(b"content-length")
    if length is not None and len(rest) < int(length):
        raise ValueError("body cut short")
    return status, rest if length is None else rest[: int(length)]


async def raw_post(host: str, port: int, request: bytes, t0: float) -> Result:
    """One POST on a fresh connection (``Connection: close``), read to EOF and checked.

    A bare asyncio client: per request it costs the client about a fifth of what an
    aiohttp session does, so the in-flight test measures the server, not the client.
    """
    writer = None
    try:
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(request)
        raw = await reader.read()
        status, body = parse_response(raw)
        error = check_chat(status, body)
    except TimeoutError:
        error = "timeout"
    except (OSError, ValueError, IndexError) as exc:
        error = type(exc).__name__
    finally:
        if writer is not None:
            writer.close()
    return Result((time.perf_counter() - t0) * 1000, math.nan, error)
