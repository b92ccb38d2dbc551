"""The OpenAI Responses API (``/v1/responses``) over the same pipeline.

``POST /v1/responses`` decodes a Responses body (``polyroute.codecs.openai_responses``)
into a chat request, prepending the stored conversation when ``previous_response_id``
names one; routes and answers it like a chat completion; encodes the answer (or the
stream's typed events); and, unless ``store: false``, stores the conversation for the
next turn (``polyroute.codecs.conversations``: in the engine's store, memory or
Redis, scoped to the gateway key, with a TTL).  ``GET`` and ``DELETE
/v1/responses/{id}`` read and forget a stored response.  Each turn is routed on its
own: a conversation may move between models.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import orjson
from starlette.requests import Request as HttpRequest
from starlette.responses import Response

from polyroute.codecs import openai_responses as orsp
from polyroute.codecs.conversations import ConversationStore, ResponseNotFound
from polyroute.engine import StreamStart
from polyroute.errors import PolyrouteError
from polyroute.server.security import reject_steering
from polyroute.server.streaming import Pieces, RelayResponse
from polyroute.server.validate import check_body, parse_body
from polyroute.types import JSON, Request, Trace

if TYPE_CHECKING:
    from polyroute.server.app import Gateway

JSON_TYPE = "application/json"


class ResponsesApi:
    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self.conversations = ConversationStore(gateway.engine.store)

    async def create(self, http: HttpRequest) -> Response | RelayResponse:
        from polyroute.server.app import _headers

        g = self.gateway
        started = time.perf_counter()
        trace = g._trace(http)
        stream = False
        try:
            g._check_loop(http)
            g._authorize(http, trace)
            raw = await g._body(http)
            body = parse_body(raw, g.limit)
            reject_steering(body)
            tenant, previous = trace.client, body.get("previous_response_id")
            history, prefer = await self._before(tenant, previous)
            chat = orsp.decode_request(body, history)
            check_body(chat, "chat")
            keep = body.get("store", True) is not False
            if keep:
                self.conversations.check(chat["messages"])  # 413 before paying upstream
            request = Request(chat, "chat", http.headers, len(raw))
            request.prefer = prefer
            rid, created = orsp.new_response_id(), int(time.time())
            stream = request.stream
            if stream:
                pieces = self._pieces(body, history, tenant, rid, created, keep)
                start, _ = await g.engine.stream(request, trace)
                try:
                    headers = _headers(trace, started)
                    headers["cache-control"] = "no-cache"

                    def on_end(status: int) -> None:
                        g._done(trace, status, "responses", True, started, request=request)

                    return RelayResponse(start, trace, on_end, headers, pieces)
                except BaseException:
                    await start.rest.aclose()
                    raise
            answer, _ = await g.engine.complete(request, trace)
            out = orsp.encode_response(answer, body, rid, created)
            if keep:
                after = orsp.conversation_after(body, history, out)
                await self.conversations.save(tenant, rid, after, out)
            headers = _headers(trace, started)
            response = Response(orjson.dumps(out), media_type=JSON_TYPE, headers=headers)
        except PolyrouteError as exc:
            if trace.outcome == "pending":
                trace.outcome = f"refused:{exc.code}"
            headers = _headers(trace, started)
            g._done(trace, exc.status, "responses", stream, started)
            return g._error(exc, trace.trace_id, headers)
        except Exception as exc:  # a bug: still one JSON 500 and one log line
            trace.outcome = "internal_error"
            g._done(trace, 500, "responses", stream, started)
            return g._error(exc, trace.trace_id, {"x-request-id": trace.request_id})
        g._done(trace, 200, "responses", False, started, request=request)
        return response

    async def _before(self, tenant: str, previous: object) -> tuple[list[JSON], str | None]:
        """The stored conversation ``previous`` continues, and the model that answered it."""
        if not isinstance(previous, str):
            return [], None
        history = await self.conversations.history(tenant, previous)
        model = (await self.conversations.get(tenant, previous)).get("model")
        return history, model if isinstance(model, str) else None

    def _pieces(  # noqa: PLR0917 (private; one call site)
        self, body: JSON, history: list[JSON], tenant: str, rid: str, created: int, keep: bool
    ) -> Pieces:
        conversations = self.conversations

        async def pieces(start: StreamStart, trace: Trace) -> AsyncIterator[bytes]:
            encoder = orsp.StreamEncoder(body, rid, created)
            try:
                for event in encoder.feed(start.first):
                    yield orsp.sse(event)
                async for chunk in start.rest:
                    for event in encoder.feed(chunk):
                        yield orsp.sse(event)
                last = encoder.finish()
                if keep and encoder.response is not None:  # stored before the final event
                    after = orsp.conversation_after(body, history, encoder.response)
                    await conversations.save(tenant, rid, after, encoder.response)
                for event in last:
                    yield orsp.sse(event)
            except PolyrouteError:
                message = f"the stream from {start.model} broke after it started"
                for event in encoder.fail(f"{message} (trace {trace.trace_id})"):
                    yield orsp.sse(event)
            except BaseException:
                if trace.outcome == "streaming":
                    trace.outcome = "client_disconnected"
                raise

        return pieces

    async def _stored(self, http: HttpRequest, delete: bool) -> Response:
        g = self.gateway
        started = time.perf_counter()
        trace = g._trace(http)
        rid = http.path_params["response_id"]
        try:
            g._authorize(http, trace)
            if delete:
                if not await self.conversations.delete(trace.client, rid):
                    raise ResponseNotFound(rid)
                out: JSON = {"id": rid, "object": "response", "deleted": True}
            else:
                out = await self.conversations.get(trace.client, rid)
        except PolyrouteError as exc:
            g._done(trace, exc.status, "responses", False, started)
            return g._error(exc, trace.trace_id, {"x-request-id": trace.request_id})
        trace.outcome = "ok"
        g._done(trace, 200, "responses", False, started)
        headers = {"x-request-id": trace.request_id}
        return Response(orjson.dumps(out), media_type=JSON_TYPE, headers=headers)

    async def get(self, http: HttpRequest) -> Response:
        return await self._stored(http, delete=False)

    async def delete(self, http: HttpRequest) -> Response:
        return await self._stored(http, delete=True)
