"""The ASGI app: OpenAI-compatible endpoints over the engine.

Built by ``create_app(engine)``; no module-level state.  Every response of the
model endpoints carries ``x-polyroute-model``, ``x-polyroute-decision``,
``x-polyroute-trace-id`` and ``x-polyroute-overhead-ms`` (time in polyroute,
upstream excluded); with a semantic cache, ``x-polyroute-cache: hit|miss``.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import time
from collections.abc import AsyncIterator
from typing import Any, Literal
from urllib.parse import quote

import orjson
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect
from starlette.requests import Request as HttpRequest
from starlette.responses import Response
from starlette.routing import Route

from polyroute.background import Background
from polyroute.codecs import anthropic_messages as am
from polyroute.engine import LOOP_HEADER, Engine, new_trace_id
from polyroute.errors import (
    BodyTimeout,
    ClientGone,
    InvalidRequest,
    LoopDetected,
    ModelNotFound,
    PayloadTooLarge,
    PolyrouteError,
    StoreUnavailable,
)
from polyroute.feedback import TraceNotFound, parse_rating
from polyroute.server.errors import error_body, error_response
from polyroute.server.fastpath import FastPath
from polyroute.server.limits import ConcurrencyLimit, Deadlines
from polyroute.server.logs import log_request
from polyroute.server.metrics import Metrics, metrics_route
from polyroute.server.openapi import openapi_endpoint
from polyroute.server.responses_api import ResponsesApi
from polyroute.server.security import KeyRing, reject_steering
from polyroute.server.streaming import RelayResponse
from polyroute.server.validate import check_body, check_embeddings, parse_body
from polyroute.server.wires import CHAT, COMPLETIONS, MESSAGES, Wire
from polyroute.types import JSON, Native, Request, Trace

JSON_TYPE = "application/json"
MAX_REQUEST_ID = 128
# visible ASCII that stays as it is in a percent-encoded header value
_HEADER_SAFE = " !\"#$&'()*+,-./:;<=>?@[\\]^_`{|}~"


def header_value(text: str) -> str:
    """``text`` as an HTTP header value: visible ASCII as it is, anything else
    (non-ASCII names such as ``模型``, control characters) percent-encoded (UTF-8)."""
    if text.isascii() and text.isprintable():
        return text
    return quote(text, safe=_HEADER_SAFE)


def _model_entry(name: str) -> dict[str, Any]:
    return {"id": name, "object": "model", "created": 0, "owned_by": "polyroute"}


def _header(http: HttpRequest, name: str) -> str:
    """A request header's first value, ``""`` when absent (``Headers.get`` raises and
    catches a KeyError for a missing one: measurable on every request)."""
    found = http.headers.getlist(name)
    return found[0] if found else ""


def _headers(trace: Trace, started: float) -> dict[str, str]:
    overhead = (time.perf_counter() - started) * 1000 - trace.upstream_ms
    trace.overhead_ms = max(overhead, 0.0)
    headers = {
        "x-polyroute-model": header_value(trace.model),
        "x-polyroute-decision": header_value(trace.decision),
        "x-polyroute-trace-id": trace.trace_id,
        "x-polyroute-overhead-ms": f"{trace.overhead_ms:.3f}",
        "x-request-id": trace.request_id or trace.trace_id,
    }
    if trace.cache:
        headers["x-polyroute-cache"] = trace.cache
    if trace.plan:
        headers["x-polyroute-plan"] = f"{trace.plan}; calls={trace.plan_calls}"
    return headers


#: how long shutdown waits for trace-log writes still in flight
DRAIN_S = 5.0


class Gateway:
    """Request handlers bound to one engine."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.limit = engine.config.server.max_body_bytes
        self.body_timeout_s = engine.config.server.body_timeout_s
        self.body_deadlines = Deadlines(self.body_timeout_s)
        self._background = Background("trace log")  # its writes in flight
        self.keys = KeyRing(engine.config.server.api_keys)
        self.redactor = engine.redactor
        self.ready = False
        self.metrics = Metrics.for_engine(engine)

    async def drain(self, timeout_s: float = DRAIN_S) -> None:
        """Let the trace-log writes in flight finish (bounded) before the stores close."""
        await self._background.drain(timeout_s)

    def _error(
        self,
        exc: BaseException,
        trace_id: str,
        headers: dict[str, str] | None = None,
        shape: Literal["openai", "anthropic"] = "openai",
    ) -> Response:
        """The one way an endpoint answers an error: OpenAI-style JSON (Anthropic's on
        ``/v1/messages``), secrets scrubbed, the trace id in a header (and in the message
        of a 5xx)."""
        return error_response(exc, headers, trace_id=trace_id, redactor=self.redactor, wire=shape)

    def _done(
        self,
        trace: Trace,
        status: int,
        endpoint: str,
        stream: bool,
        started: float,
        *,
        request: Request | None = None,
    ) -> None:
        """One finished request (any endpoint, errors included): its access log line, its
        metrics, and (a routed model call, with ``feedback:`` on) its trace-log record,
        written in the background."""
        log_request(trace, status, endpoint, stream, started)
        self.metrics.observe(trace, status, endpoint, stream, time.perf_counter() - started)
        log = self.engine.trace_log
        if log is not None and request is not None and trace.decision:
            self._background.spawn(log.record(trace, request))

    @staticmethod
    def _trace(http: HttpRequest) -> Trace:
        """A new trace; its request id is the client's ``x-request-id`` when that is 1 to
        128 visible ASCII characters, else the trace id."""
        trace = Trace(new_trace_id())
        given = _header(http, "x-request-id")
        ok = 0 < len(given) <= MAX_REQUEST_ID and given.isascii() and given.isprintable()
        trace.request_id = given if ok else trace.trace_id
        return trace

    def _check_loop(self, http: HttpRequest) -> None:
        """A request this gateway sent itself (a model's base_url pointing back here)."""
        if _header(http, LOOP_HEADER) == self.engine.instance_id:
            raise LoopDetected(
                "this request came from this gateway itself: a model's base_url points back "
                "at the gateway (a config loop)"
            )

    def _authorize(self, http: HttpRequest, trace: Trace | None = None) -> None:
        if self.keys.enabled:
            name = self.keys.check(http.headers)
            if trace is not None:
                trace.client = name

    async def _body(self, http: HttpRequest) -> bytes:
        declared = _header(http, "content-length")
        if (
            declared.isascii()
            and declared.isdigit()
            and (len(declared) > 18 or int(declared) > self.limit)
        ):
            raise PayloadTooLarge(f"request body is {declared} bytes; the limit is {self.limit}")
        chunks: list[bytes] = []
        size = 0
        deadline = self.body_deadlines.enter()  # a slow client may not hold a slot
        try:
            try:
                async for chunk in http.stream():
                    size += len(chunk)
                    if size > self.limit:
                        raise PayloadTooLarge(
                            f"request body is over the limit of {self.limit} bytes"
                        )
                    chunks.append(chunk)
            except asyncio.CancelledError:
                self.body_deadlines.expired(deadline)  # TimeoutError when the deadline cut it
                raise
        except ClientDisconnect:
            raise ClientGone("the client closed the connection while sending its body") from None
        except TimeoutError:
            raise BodyTimeout(
                f"the request body did not arrive within {self.body_timeout_s:g} s"
            ) from None
        finally:
            self.body_deadlines.leave(deadline)
        return b"".join(chunks)

    async def _parse(self, http: HttpRequest, wire: Wire) -> tuple[Request, JSON]:
        """The pipeline's request, and the body as the client sent it (parsed)."""
        raw = await self._body(http)
        body = parse_body(raw, self.limit)
        reject_steering(body)  # before decoding: a codec may drop unknown fields
        decoded = wire.decode(body)
        request = Request(decoded, wire.endpoint, http.headers, len(raw))
        if wire.native is not None:
            request.native = Native(wire.native, body)
        return request, body

    async def chat(self, http: HttpRequest) -> Response | RelayResponse:
        return await self._model_call(http, CHAT)

    async def completions(self, http: HttpRequest) -> Response | RelayResponse:
        return await self._model_call(http, COMPLETIONS)

    async def messages(self, http: HttpRequest) -> Response | RelayResponse:
        """``POST /v1/messages``: the Anthropic Messages API over the same pipeline."""
        return await self._model_call(http, MESSAGES)

    async def count_tokens(self, http: HttpRequest) -> Response:
        """``POST /v1/messages/count_tokens``: an estimate, answered locally."""
        started = time.perf_counter()
        trace = self._trace(http)
        try:
            self._authorize(http, trace)
            counted = am.count_tokens(parse_body(await self._body(http), self.limit))
        except PolyrouteError as exc:
            self._done(trace, exc.status, "count_tokens", False, started)
            return self._error(exc, trace.trace_id, {"x-request-id": trace.request_id}, "anthropic")
        trace.outcome = "ok"
        self._done(trace, 200, "count_tokens", False, started)
        headers = {"x-request-id": trace.request_id}
        return Response(orjson.dumps(counted), media_type=JSON_TYPE, headers=headers)

    async def feedback(self, http: HttpRequest) -> Response:
        """``POST /v1/feedback``: a score (or label) for a served request of this key."""
        started = time.perf_counter()
        trace = self._trace(http)
        try:
            self._authorize(http, trace)
            rating = parse_rating(parse_body(await self._body(http), self.limit))
            log = self.engine.trace_log
            if log is None:
                raise TraceNotFound(
                    "feedback is not enabled on this gateway (its config has no `feedback:`)"
                )
            try:
                record = await log.rate(trace.client, rating)
            except PolyrouteError:
                raise
            except Exception as exc:
                raise StoreUnavailable(f"the trace store is unavailable ({exc})") from None
            trace.decision = str(record.get("decision", ""))
            trace.events.append({"learned": self.engine.learn(record, rating.score)})
        except PolyrouteError as exc:
            trace.outcome = f"refused:{exc.code}"
            self._done(trace, exc.status, "feedback", False, started)
            return self._error(exc, trace.trace_id, {"x-request-id": trace.request_id})
        trace.outcome = "ok"
        self._done(trace, 204, "feedback", False, started)
        return Response(status_code=204, headers={"x-request-id": trace.request_id})

    async def embeddings(self, http: HttpRequest) -> Response:
        """``POST /v1/embeddings``: passed to the named embedding model (not routed)."""
        started = time.perf_counter()
        trace = self._trace(http)
        try:
            self._check_loop(http)
            self._authorize(http, trace)
            body = parse_body(await self._body(http), self.limit)
            reject_steering(body)
            check_embeddings(body)
            answer = await self.engine.embed(body, trace)
            headers = _headers(trace, started)
        except PolyrouteError as exc:
            if trace.outcome == "pending":
                trace.outcome = f"refused:{exc.code}"
            self._done(trace, exc.status, "embeddings", False, started)
            return self._error(exc, trace.trace_id, _headers(trace, started))
        self._done(trace, 200, "embeddings", False, started)
        return Response(orjson.dumps(answer), media_type=JSON_TYPE, headers=headers)

    async def _model_call(self, http: HttpRequest, wire: Wire) -> Response | RelayResponse:
        started = time.perf_counter()
        trace = self._trace(http)
        stream = False
        request: Request | None = None
        try:
            self._check_loop(http)
            self._authorize(http, trace)
            request, body = await self._parse(http, wire)
            stream = request.stream
            if stream:
                return await self._stream(request, trace, started, wire, body)
            answer, _ = await self.engine.complete(request, trace)
            answer = wire.encode(answer, trace, request)
            headers = _headers(trace, started)  # the overhead excludes serialising the answer
            response = Response(orjson.dumps(answer), media_type=JSON_TYPE, headers=headers)
        except PolyrouteError as exc:
            if trace.outcome == "pending":
                trace.outcome = f"refused:{exc.code}"
            headers = _headers(trace, started)
            self._done(trace, exc.status, wire.name, stream, started, request=request)
            return self._error(exc, trace.trace_id, headers, wire.errors)
        except Exception as exc:  # a bug: still one JSON 500 and one log line per request
            trace.outcome = "internal_error"
            self._done(trace, 500, wire.name, stream, started, request=request)
            return self._error(exc, trace.trace_id, {"x-request-id": trace.request_id}, wire.errors)
        self._done(trace, 200, wire.name, False, started, request=request)
        return response

    async def _stream(
        self, request: Request, trace: Trace, started: float, wire: Wire, body: JSON
    ) -> RelayResponse:
        pieces = wire.stream(body, request)
        start, _ = await self.engine.stream(request, trace)
        try:
            headers = _headers(trace, started)
            headers["cache-control"] = "no-cache"

            def on_end(status: int) -> None:
                self._done(trace, status, wire.name, True, started, request=request)

            return RelayResponse(start, trace, on_end, headers, pieces)
        except BaseException:
            await start.rest.aclose()  # the upstream stream is released whatever failed
            raise

    async def route(self, http: HttpRequest) -> Response:
        started = time.perf_counter()
        trace = self._trace(http)
        try:
            self._authorize(http, trace)
            body = parse_body(await self._body(http), self.limit)
            if "messages" not in body and isinstance(body.get("prompt"), str):
                body = {**body, "messages": [{"role": "user", "content": body["prompt"]}]}
                body.pop("prompt")
            check_body(body, "chat")
            request = Request(body, "chat", http.headers)
            routed = await asyncio.to_thread(self.engine.route, request, trace.trace_id)
        except PolyrouteError as exc:
            trace.outcome = f"refused:{exc.code}"
            self._done(trace, exc.status, "route", False, started)
            return self._error(exc, trace.trace_id, {"x-request-id": trace.request_id})
        routed.client, routed.request_id = trace.client, trace.request_id
        if routed.outcome == "pending":
            routed.outcome = "routed"
        self._done(routed, 200, "route", False, started)
        headers = {"x-polyroute-trace-id": routed.trace_id, "x-request-id": routed.request_id}
        return Response(orjson.dumps(routed.as_dict()), media_type=JSON_TYPE, headers=headers)

    def _model_ids(self) -> list[str]:
        engine = self.engine
        return ["auto", *(p for p in engine.profiles if p != "auto"), *engine.backends]

    async def models(self, http: HttpRequest) -> Response:
        started = time.perf_counter()
        trace = self._trace(http)
        try:
            self._authorize(http, trace)
        except PolyrouteError as exc:
            self._done(trace, exc.status, "models", False, started)
            return self._error(exc, trace.trace_id, {"x-request-id": trace.request_id})
        data = [_model_entry(n) for n in self._model_ids()]
        trace.outcome = "ok"
        self._done(trace, 200, "models", False, started)
        body = orjson.dumps({"object": "list", "data": data})
        return Response(body, media_type=JSON_TYPE, headers={"x-request-id": trace.request_id})

    async def model(self, http: HttpRequest) -> Response:
        """``GET /v1/models/{id}``: one of the listed ids, else an OpenAI-style 404."""
        started = time.perf_counter()
        trace = self._trace(http)
        name = http.path_params["model"]
        try:
            self._authorize(http, trace)
            if name not in self._model_ids():
                raise ModelNotFound(
                    f"The model {name!r} does not exist; GET /v1/models lists the models"
                )
        except PolyrouteError as exc:
            self._done(trace, exc.status, "models", False, started)
            return self._error(exc, trace.trace_id, {"x-request-id": trace.request_id})
        trace.outcome = "ok"
        self._done(trace, 200, "models", False, started)
        headers = {"x-request-id": trace.request_id}
        return Response(orjson.dumps(_model_entry(name)), media_type=JSON_TYPE, headers=headers)

    async def healthz(self, http: HttpRequest) -> Response:
        return Response(b'{"status":"ok"}', media_type=JSON_TYPE)

    async def readyz(self, http: HttpRequest) -> Response:
        states = {name: b.breaker.state for name, b in self.engine.backends.items()}
        ok = self.ready and any(s != "open" for s in states.values())
        body = {"status": "ready" if ok else "not_ready", "backends": states}
        return Response(orjson.dumps(body), status_code=200 if ok else 503, media_type=JSON_TYPE)


async def _http_error(http: HttpRequest, exc: Exception) -> Response:
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    if status == 404:
        body = error_body(
            f"no route for {http.method} {http.url.path}", "invalid_request_error", "not_found"
        )
    elif status == 405:
        body = error_body(
            f"method {http.method} not allowed on {http.url.path}",
            "invalid_request_error",
            "method_not_allowed",
        )
    else:
        return error_response(
            exc if status == 500 else InvalidRequest(str(getattr(exc, "detail", exc)))
        )
    headers = exc.headers if isinstance(exc, HTTPException) else None  # a 405's Allow
    return Response(body, status_code=status, media_type=JSON_TYPE, headers=headers)


def create_app(engine: Engine) -> Starlette:
    gateway = Gateway(engine)
    responses = ResponsesApi(gateway)
    config = engine.config

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        redactor = gateway.redactor
        handlers = list(logging.getLogger().handlers)
        for handler in handlers:  # handler filters see every record, whatever its logger
            handler.addFilter(redactor)
        engine.warmup()
        # long-lived start-up objects leave the GC's view: shorter pauses under load
        gc.collect()
        gc.freeze()
        gateway.ready = True
        try:
            yield
        finally:
            gateway.ready = False
            await gateway.drain()  # trace-log writes in flight land before the stores close
            await engine.aclose()
            for handler in handlers:
                handler.removeFilter(redactor)

    fast = {"/v1/chat/completions": gateway.chat, "/v1/completions": gateway.completions}
    routes = [
        Route("/v1/chat/completions", gateway.chat, methods=["POST"]),
        Route("/v1/completions", gateway.completions, methods=["POST"]),
        Route("/v1/messages", gateway.messages, methods=["POST"]),
        Route("/v1/messages/count_tokens", gateway.count_tokens, methods=["POST"]),
        Route("/v1/embeddings", gateway.embeddings, methods=["POST"]),
        Route("/v1/responses", responses.create, methods=["POST"]),
        Route("/v1/responses/{response_id}", responses.get, methods=["GET"]),
        Route("/v1/responses/{response_id}", responses.delete, methods=["DELETE"]),
        Route("/v1/models", gateway.models, methods=["GET"]),
        Route("/v1/models/{model:path}", gateway.model, methods=["GET"]),
        Route("/v1/route", gateway.route, methods=["POST"]),
        Route("/v1/feedback", gateway.feedback, methods=["POST"]),
        Route("/healthz", gateway.healthz, methods=["GET"]),
        Route("/readyz", gateway.readyz, methods=["GET"]),
        Route("/openapi.json", openapi_endpoint, methods=["GET"]),
        metrics_route(gateway.metrics),
    ]
    handlers: dict[Any, Any] = {HTTPException: _http_error, Exception: _http_error}
    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers=handlers,
        middleware=[
            Middleware(ConcurrencyLimit, limit=config.server.max_concurrent_requests),
            Middleware(FastPath, handlers=fast),
        ],
    )
    app.router.redirect_slashes = False  # a redirect would echo the client's Host header
    app.state.gateway = gateway
    app.state.engine = engine
    return app
