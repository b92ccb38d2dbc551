"""The model endpoints' fast path: a pure ASGI layer in front of Starlette's router.

``POST /v1/chat/completions`` and ``POST /v1/completions`` go straight to their
handler, skipping the router and the exception middleware (together about a
fifth of the gateway's CPU in the py-spy profile).  The handlers already turn
every ``PolyrouteError`` into its JSON answer; anything else becomes the same
JSON 500 the app's handler gives.  Every other request takes the normal route.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping

from starlette.requests import Request as HttpRequest
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from polyroute.server.errors import error_response
from polyroute.server.streaming import RelayResponse

Handler = Callable[[HttpRequest], Awaitable[Response | RelayResponse]]


class FastPath:
    def __init__(self, app: ASGIApp, handlers: Mapping[str, Handler]) -> None:
        self.app = app
        self.handlers = dict(handlers)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        handler = self.handlers.get(scope["path"]) if scope["type"] == "http" else None
        if handler is None or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        response: Response | RelayResponse
        try:
            response = await handler(HttpRequest(scope, receive))
        except Exception as exc:  # a bug, not a refusal: the same JSON 500 as the app's
            response = error_response(exc)
        await response(scope, receive, send)
