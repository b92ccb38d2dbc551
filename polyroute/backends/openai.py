"""The OpenAI-compatible provider: vLLM, llama.cpp server, Ollama, OpenAI itself.

Bodies pass through untouched except ``model`` (set to the upstream name).
Streams are parsed as SSE ``data:`` lines; a stream that ends without
``data: [DONE]`` raises ``UpstreamError`` so it is never taken as complete.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from types import SimpleNamespace

import aiohttp
import orjson

from polyroute.backends.errors import parse_retry_after, transport_error
from polyroute.errors import UpstreamError, UpstreamStatus
from polyroute.jsonio import dumps_body
from polyroute.types import JSON, Request

MAX_RESPONSE_BYTES = 32 * 1024 * 1024
# idle pooled connections are dropped after this; below the 5 s of uvicorn-based servers
# (vLLM, llama.cpp's Python server), so the gateway, not the upstream, closes them
KEEPALIVE_S = 4.0
_PATHS = {"chat": "/chat/completions", "completions": "/completions"}


async def _on_reuse(
    session: aiohttp.ClientSession,
    ctx: SimpleNamespace,
    params: aiohttp.TraceConnectionReuseconnParams,
) -> None:
    if isinstance(ctx.trace_request_ctx, dict):
        ctx.trace_request_ctx["reused"] = True


_REUSE_TRACER = aiohttp.TraceConfig()
_REUSE_TRACER.on_connection_reuseconn.append(_on_reuse)
_REUSE_TRACER.freeze()


class HttpProvider:
    """Shared plumbing: one pooled aiohttp session per upstream base URL."""

    def __init__(
        self,
        base_url: str,
        headers: Mapping[str, str] | None = None,
        keepalive_s: float = KEEPALIVE_S,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._headers = {"content-type": "application/json", **(headers or {})}
        self._keepalive_s = keepalive_s
        self._session: aiohttp.ClientSession | None = None
        self._fresh: aiohttp.ClientSession | None = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(
                limit=0, ttl_dns_cache=300, keepalive_timeout=self._keepalive_s
            )
            self._session = self._new_session(connector)
        return self._session

    def _new_session(self, connector: aiohttp.TCPConnector) -> aiohttp.ClientSession:
        return aiohttp.ClientSession(
            connector=connector,
            headers=self._headers,
            skip_auto_headers=("User-Agent",),
            trace_configs=[_REUSE_TRACER],
        )

    async def _send(self, url: str, payload: bytes) -> aiohttp.ClientResponse:
        """POST on a pooled connection.  If that connection was an idle one the upstream had
        closed meanwhile (the request could not be written, or the server hung up before
        answering), the request is sent once more on a new connection, at once: a stale pool
        is not the backend's fault and must not cost a retry or count against its circuit.
        A failure on a new connection is the backend's and is raised."""
        reused: dict[str, bool] = {}
        try:
            return await self.session.post(url, data=payload, trace_request_ctx=reused)
        except aiohttp.ClientConnectorError:
            raise  # no connection could be made: a real failure
        except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError):
            if not reused:
                raise
            if self._fresh is None or self._fresh.closed:
                self._fresh = self._new_session(aiohttp.TCPConnector(limit=0, force_close=True))
            return await self._fresh.post(url, data=payload)

    async def aclose(self) -> None:
        for session in (self._session, self._fresh):
            if session is not None:
                await session.close()
        self._session = self._fresh = None

    async def _post(self, path: str, payload: bytes, timeout_s: float) -> JSON:
        what = f"POST {self.base_url}{path}"
        try:
            async with asyncio.timeout(timeout_s):
                async with await self._send(self.base_url + path, payload) as resp:
                    raw = await _read_limited(resp)
                    if resp.status >= 400:
                        raise _status_error(what, resp, raw)
        except Exception as exc:
            raise transport_error(exc, what) from None
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise UpstreamError(f"{what}: response is not JSON") from None
        if not isinstance(data, dict):
            raise UpstreamError(f"{what}: response is not a JSON object")
        return data

    async def _open_sse(
        self, path: str, payload: bytes, timeout_s: float
    ) -> aiohttp.ClientResponse:
        what = f"POST {self.base_url}{path} (stream)"
        try:
            async with asyncio.timeout(timeout_s):
                resp = await self._send(self.base_url + path, payload)
                if resp.status >= 400:
                    raw = await _read_limited(resp)
                    resp.release()
                    raise _status_error(what, resp, raw)
        except Exception as exc:
            raise transport_error(exc, what) from None
        ctype = resp.headers.get("content-type", "")
        if "text/event-stream" not in ctype:
            resp.close()
            raise UpstreamError(f"{what}: expected text/event-stream, got {ctype or 'nothing'}")
        return resp


async def _read_limited(resp: aiohttp.ClientResponse) -> bytes:
    declared = resp.content_length
    if declared is not None and declared > MAX_RESPONSE_BYTES:
        raise UpstreamError(f"upstream response too large ({declared} bytes)")
    chunks: list[bytes] = []
    size = 0
    async for chunk in resp.content.iter_any():
        size += len(chunk)
        if size > MAX_RESPONSE_BYTES:
            raise UpstreamError(f"upstream response over {MAX_RESPONSE_BYTES} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _status_error(what: str, resp: aiohttp.ClientResponse, raw: bytes) -> UpstreamStatus:
    return UpstreamStatus(
        f"{what}: upstream answered {resp.status}",
        resp.status,
        raw[:4096],
        parse_retry_after(resp.headers.get("retry-after")),
    )


class SSEStream:
    """Iterates an upstream SSE response as parsed JSON chunks; strict about completeness."""

    def __init__(self, resp: aiohttp.ClientResponse, idle_timeout_s: float, what: str) -> None:
        self._resp = resp
        self._idle = idle_timeout_s
        self._what = what

    def __aiter__(self) -> AsyncIterator[JSON]:
        return self._events()

    async def _events(self) -> AsyncIterator[JSON]:
        content = self._resp.content
        try:
            while True:
                async with asyncio.timeout(self._idle):
                    line = await content.readline()
                if not line:
                    raise UpstreamError(f"{self._what}: stream ended before [DONE]")
                if not line.startswith(b"data:"):
                    continue
                data = line[5:].strip()
                if data == b"[DONE]":
                    return
                try:
                    chunk = orjson.loads(data)
                except orjson.JSONDecodeError:
                    raise UpstreamError(f"{self._what}: malformed stream chunk") from None
                if isinstance(chunk, dict):
                    if "error" in chunk and "choices" not in chunk:
                        raise UpstreamError(f"{self._what}: upstream sent an error event")
                    yield chunk
        except UpstreamError:
            raise
        except Exception as exc:
            raise transport_error(exc, f"{self._what}: stream") from None
        finally:
            self._resp.release()

    async def aclose(self) -> None:
        self._resp.close()


class OpenAIProvider(HttpProvider):
    """Speaks the OpenAI HTTP API (``/chat/completions``, ``/completions``)."""

    def __init__(
        self,
        base_url: str,
        api_key: str | None = None,
        headers: Mapping[str, str] | None = None,
        keepalive_s: float = KEEPALIVE_S,
    ) -> None:
        auth = {"authorization": f"Bearer {api_key}"} if api_key else {}
        super().__init__(base_url, {**(headers or {}), **auth}, keepalive_s)

    @staticmethod
    def _payload(request: Request, upstream_model: str, stream: bool) -> bytes:
        body = dict(request.body)
        body["model"] = upstream_model
        if stream:
            body["stream"] = True
        else:
            body.pop("stream", None)
            body.pop("stream_options", None)
        return dumps_body(body)

    async def complete(self, request: Request, upstream_model: str, timeout_s: float) -> JSON:
        path = _PATHS[request.endpoint]
        payload = self._payload(request, upstream_model, stream=False)
        data = await self._post(path, payload, timeout_s)
        if "error" in data and "choices" not in data:  # as SSEStream does for error events
            raise UpstreamError(f"POST {self.base_url}{path}: upstream answered 200 with an error")
        return data

    async def embed(self, body: JSON, upstream_model: str, timeout_s: float) -> JSON:
        """``POST /embeddings`` with ``body`` (its ``model`` replaced)."""
        payload = dumps_body({**body, "model": upstream_model})
        data = await self._post("/embeddings", payload, timeout_s)
        if not isinstance(data.get("data"), list):
            raise UpstreamError(f"POST {self.base_url}/embeddings: an answer without data")
        return data

    async def open_stream(
        self, request: Request, upstream_model: str, timeout_s: float, idle_timeout_s: float
    ) -> SSEStream:
        path = _PATHS[request.endpoint]
        payload = self._payload(request, upstream_model, stream=True)
        resp = await self._open_sse(path, payload, timeout_s)
        return SSEStream(resp, idle_timeout_s, f"POST {self.base_url}{path}")
