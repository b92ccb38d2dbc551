"""The one exception hierarchy of polyroute.

::

    PolyrouteError
    ├── ConfigError            bad config file or CLI input (names file, key path, expectation)
    ├── DatasetError           a malformed routing dataset (names file and line)
    ├── NotFittedError         a learned router used before ``fit``
    ├── RequestError           a client request we refuse (4xx)
    │   ├── InvalidRequest         malformed JSON or wrong schema        -> 400
    │   ├── Unauthorized           missing / wrong gateway key           -> 401
    │   ├── ModelNotFound          unknown ``model``                      -> 404
    │   ├── PayloadTooLarge        body over the configured limit        -> 413
    │   ├── BodyTimeout            body not received in time (slow client) -> 408
    │   ├── ClientGone             client disconnected while sending     -> 499 (logged only)
    │   ├── Overloaded             over the gateway's concurrency limit  -> 429
    │   ├── Blocked                refused by a rule or plugin           -> 403
    │   └── LoopDetected           a request the gateway sent itself     -> 508
    ├── StoreUnavailable       the trace store behind /v1/feedback is down -> 503
    ├── RoutingError           no decision or no usable candidate      -> 503
    └── UpstreamError          every candidate failed                  -> 502
        ├── UpstreamTimeout        deadline or per-attempt timeout        -> 504
        ├── UpstreamStatus         an upstream answered with an error status
        └── UpstreamUnavailable    connection refused / circuit open      -> 503

Each class carries the HTTP status and OpenAI-style ``type``/``code`` it maps to;
``polyroute.server.errors`` turns them into JSON at exactly one boundary.
"""

from __future__ import annotations


class PolyrouteError(Exception):
    """Base of every error polyroute raises on purpose."""

    status: int = 500
    type: str = "server_error"
    code: str = "internal_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ConfigError(PolyrouteError):
    """A config file or CLI argument is invalid; the message names where and what was expected."""

    status = 400
    type = "invalid_request_error"
    code = "invalid_config"


class DatasetError(PolyrouteError):
    """A data file (a routing dataset, a JSON-lines file of rows) is malformed; the message
    names the file and line."""

    code = "invalid_dataset"


class NotFittedError(PolyrouteError):
    """A learned router was asked to predict before it was fitted."""

    code = "not_fitted"


class RequestError(PolyrouteError):
    """A client request that polyroute refuses."""

    status = 400
    type = "invalid_request_error"
    code = "invalid_request"


class InvalidRequest(RequestError):
    """Malformed JSON, or a body that does not match the endpoint's schema."""


class FieldError(InvalidRequest):
    """One request field is wrong: ``param`` is its path (``input[2].content[0].type``),
    reported in the error JSON; the message starts with it."""

    def __init__(self, param: str, message: str) -> None:
        super().__init__(f"{param}: {message}")
        self.param = param


class Unauthorized(RequestError):
    status = 401
    type = "authentication_error"
    code = "invalid_api_key"


class ModelNotFound(RequestError):
    status = 404
    code = "model_not_found"


class PayloadTooLarge(RequestError):
    status = 413
    code = "payload_too_large"


class BodyTimeout(RequestError):
    """The client did not send its whole body within ``server.body_timeout_s``."""

    status = 408
    code = "request_timeout"


class ClientGone(RequestError):
    """The client closed the connection before its body arrived (nobody sees the answer)."""

    status = 499
    code = "client_disconnected"


class Overloaded(RequestError):
    """The gateway already serves its configured maximum of concurrent requests."""

    status = 429
    type = "rate_limit_error"
    code = "concurrency_limit"


class Blocked(RequestError):
    """A decision or plugin refused the request on purpose."""

    status = 403
    code = "blocked"


class LoopDetected(RequestError):
    """The request carries this gateway's own loop marker: a model's ``base_url`` points
    back at the gateway.  Refused at once instead of recursing until resources run out."""

    status = 508
    type = "invalid_request_error"
    code = "loop_detected"


class StoreUnavailable(PolyrouteError):
    """A store a request needs (the trace log behind ``/v1/feedback``) does not answer."""

    status = 503
    type = "server_error"
    code = "store_unavailable"


class RoutingError(PolyrouteError):
    """No decision matched, or no candidate could be used."""

    status = 503
    type = "server_error"
    code = "no_route"


class UpstreamError(PolyrouteError):
    """Every candidate failed; the message summarises the attempts."""

    status = 502
    type = "upstream_error"
    code = "upstream_failed"


class UpstreamTimeout(UpstreamError):
    status = 504
    code = "upstream_timeout"


class UpstreamStatus(UpstreamError):
    """An upstream answered with an error status that is not worth retrying elsewhere."""

    def __init__(
        self,
        message: str,
        upstream_status: int,
        body: bytes = b"",
        retry_after_s: float | None = None,
    ) -> None:
        super().__init__(message)
        self.upstream_status = upstream_status
        self.body = body
        self.retry_after_s = retry_after_s
        if 400 <= upstream_status < 500 and upstream_status != 429:
            self.status = upstream_status  # the client's fault: pass the status through
            self.type = "invalid_request_error"
            self.code = "upstream_rejected"


class UpstreamUnavailable(UpstreamError):
    status = 503
    code = "upstream_unavailable"
