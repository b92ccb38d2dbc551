"""The one boundary where exceptions become OpenAI-style JSON errors."""

from __future__ import annotations

import logging

import orjson
from starlette.responses import Response

from polyroute.errors import PolyrouteError

log = logging.getLogger("polyroute.server")


def error_body(message: str, type_: str, code: str, param: str | None = None) -> bytes:
    return orjson.dumps(
        {"error": {"message": message, "type": type_, "code": code, "param": param}}
    )


def error_response(exc: BaseException, headers: dict[str, str] | None = None) -> Response:
    """Map any exception to a JSON error; unexpected ones become a 500 without internals."""
    if isinstance(exc, PolyrouteError):
        status, body = (
            exc.status,
            error_body(exc.message, exc.type, exc.code, getattr(exc, "param", None)),
        )
    else:
        log.error("internal error: %s", type(exc).__name__, exc_info=exc)
        status = 500
        body = error_body(
            "internal error in polyroute; see the gateway log", "server_error", "internal_error"
        )
    return Response(body, status_code=status, media_type="application/json", headers=headers)
