"""The one boundary where exceptions become OpenAI-style JSON errors."""

from __future__ import annotations

import logging

import orjson
from starlette.responses import Response

from polyroute.errors import PolyrouteError
from polyroute.redact import SecretRedactor

log = logging.getLogger("polyroute.server")


def error_body(message: str, type_: str, code: str, param: str | None = None) -> bytes:
    return orjson.dumps(
        {"error": {"message": message, "type": type_, "code": code, "param": param}}
    )


def error_response(
    exc: BaseException,
    headers: dict[str, str] | None = None,
    *,
    trace_id: str | None = None,
    redactor: SecretRedactor | None = None,
) -> Response:
    """Map any exception to a JSON error; unexpected ones become a 500 without internals.

    Every message passes ``redactor`` (a configured secret never reaches a client); a
    server-side error (5xx) names the trace id, which also rides in
    ``x-polyroute-trace-id``, so the client can quote it and the log line be found."""
    if trace_id is not None:
        headers = {**(headers or {}), "x-polyroute-trace-id": trace_id}
    if isinstance(exc, PolyrouteError):
        message = exc.message
        if redactor is not None:
            message = redactor.scrub(message)
        if exc.status >= 500 and trace_id is not None and trace_id not in message:
            message = f"{message} (trace {trace_id})"
        status, body = (
            exc.status,
            error_body(message, exc.type, exc.code, getattr(exc, "param", None)),
        )
    else:
        log.error("internal error: %s", type(exc).__name__, exc_info=exc)
        status = 500
        body = error_body(
            "internal error in polyroute; see the gateway log", "server_error", "internal_error"
        )
    return Response(body, status_code=status, media_type="application/json", headers=headers)
