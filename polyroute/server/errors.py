"""The one boundary where exceptions become OpenAI-style JSON errors."""

from __future__ import annotations

import logging
from typing import Literal

import orjson
from starlette.responses import Response

from polyroute.codecs import anthropic_messages
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
    wire: Literal["openai", "anthropic"] = "openai",
) -> Response:
    """Map any exception to a JSON error; unexpected ones become a 500 without internals.

    ``wire`` picks the error shape: OpenAI's, or Anthropic's on ``/v1/messages``.
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
        status = exc.status
        if wire == "anthropic":
            body = orjson.dumps(anthropic_messages.error_body(status, message))
        else:
            body = error_body(message, exc.type, exc.code, getattr(exc, "param", None))
    else:
        log.error("internal error: %s", type(exc).__name__, exc_info=exc)
        status = 500
        message = "internal error in polyroute; see the gateway log"
        if wire == "anthropic":
            body = orjson.dumps(anthropic_messages.error_body(status, message))
        else:
            body = error_body(message, "server_error", "internal_error")
    return Response(body, status_code=status, media_type="application/json", headers=headers)
