"""A static OpenAPI 3.1 description of the gateway, served at ``GET /openapi.json``.

Built once at import; the handler returns pre-serialized bytes.  The request
schemas say exactly what ``polyroute.server.validate`` (and the steering check
of ``polyroute.server.security``) refuse with a 400 and nothing more: every
other field is passed through to the upstream untouched, so bodies and
messages allow additional properties.  Two limits are not expressible here:
the body size (``server.max_body_bytes``, 413) and the nesting depth
(``validate.MAX_DEPTH`` levels of arrays/objects, 400).  The body is parsed as
JSON whatever its ``Content-Type`` says.
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request as HttpRequest
from starlette.responses import Response

from polyroute import __version__
from polyroute.server.openapi_schemas import (
    EMBEDDINGS_REQUEST,
    RESPONSES_REQUEST,
    SCHEMAS,
    anthropic_request,
)
from polyroute.server.validate import MAX_DEPTH

JSON_TYPE = "application/json"
Schema = dict[str, Any]


def _ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


FEEDBACK_REQUEST: Schema = {
    "type": "object",
    "required": ["trace_id"],
    "additionalProperties": False,
    "properties": {
        "trace_id": {"type": "string", "minLength": 1, "maxLength": 128},
        "score": {"type": "number", "minimum": 0, "maximum": 1},
        "label": {"type": "string", "enum": ["good", "bad"]},
        "comment": {"type": "string", "maxLength": 2000},
    },
    "oneOf": [
        {"required": ["score"], "not": {"required": ["label"]}},
        {"required": ["label"], "not": {"required": ["score"]}},
    ],
}


def _error(description: str, headers: Schema | None = None) -> Schema:
    response: Schema = {
        "description": description,
        "content": {JSON_TYPE: {"schema": _ref("ErrorResponse")}},
    }
    if headers:
        response["headers"] = headers
    return response


def _json(description: str, schema: Schema, headers: Schema | None = None) -> Schema:
    response: Schema = {"description": description, "content": {JSON_TYPE: {"schema": schema}}}
    if headers:
        response["headers"] = headers
    return response


_RESPONSE_HEADERS = {
    "x-polyroute-model": "The backend that answered (empty when none was reached).",
    "x-polyroute-decision": "The routing decision that chose the candidates.",
    "x-polyroute-trace-id": "The trace id of this request; the access log has the full trace.",
    "x-polyroute-overhead-ms": "Milliseconds spent in polyroute, upstream time excluded.",
}
_HEADER_SCHEMAS: dict[str, Schema] = {
    "x-polyroute-model": {"type": "string"},
    "x-polyroute-decision": {"type": "string"},
    "x-polyroute-trace-id": {"type": "string", "pattern": "^[0-9a-f]+$"},
    "x-polyroute-overhead-ms": {"type": "string", "pattern": r"^[0-9]+\.[0-9]{3}$"},
}


def _trace_headers(required: bool) -> Schema:
    return {
        name: {"$ref": f"#/components/headers/{name}"}
        if required
        else {"description": text, "required": False, "schema": _HEADER_SCHEMAS[name]}
        for name, text in _RESPONSE_HEADERS.items()
    }


_RETRY_AFTER = {
    "Retry-After": {
        "description": "Seconds to wait before retrying.",
        "schema": {"type": "string", "pattern": "^[0-9]+$"},
    }
}
_NOT_ALLOWED = _error("Any other method on this path (`method_not_allowed`).")
_UNAUTHORIZED = _error(
    "Gateway API keys are configured and the request presents none or a wrong one "
    "(`invalid_api_key`)."
)
_OVERLOADED = _error(
    "The gateway already serves `server.max_concurrent_requests` requests (`concurrency_limit`).",
    _RETRY_AFTER,
)
_BODY_TIMEOUT = _error(
    "The body did not arrive within `server.body_timeout_s` (`request_timeout`)."
)
_TOO_LARGE = _error("The body is over `server.max_body_bytes` (`payload_too_large`).")
_INVALID = _error(
    "Malformed JSON, a body that breaks the schema (`param` names the field) or "
    f"nesting deeper than {MAX_DEPTH} levels (`invalid_request`)."
)


def _model_responses(success: Schema) -> Schema:
    errors = _trace_headers(required=False)
    return {
        "200": success,
        "400": _error(
            "Malformed JSON, a body that breaks the schema (`param` names the field), nesting "
            f"deeper than {MAX_DEPTH} levels, or a steering field such as `base_url` "
            "(`invalid_request`).",
            errors,
        ),
        "401": _UNAUTHORIZED,
        "403": _error("Refused by a rule or plugin (`blocked`).", errors),
        "404": _error("Unknown `model` (`model_not_found`).", errors),
        "405": _NOT_ALLOWED,
        "408": _error(
            "The body did not arrive within `server.body_timeout_s` (`request_timeout`).", errors
        ),
        "413": _error("The body is over `server.max_body_bytes` (`payload_too_large`).", errors),
        "429": _OVERLOADED,
        "4XX": _error(
            "An upstream refused the request as the client's fault (`upstream_rejected`); "
            "its status is passed through.",
            errors,
        ),
        "502": _error("Every candidate failed (`upstream_failed`).", errors),
        "503": _error(
            "No usable candidate: no decision matched (`no_route`) or every candidate is "
            "down or its circuit open (`upstream_unavailable`).",
            errors,
        ),
        "504": _error("The deadline or an upstream timeout passed (`upstream_timeout`).", errors),
    }


_EVENT_STREAM = {
    "text/event-stream": {
        "schema": {
            "description": (
                "One server-sent event (the schema describes each event, as OpenAPI 3.2's "
                "`itemSchema` does): `data` is a JSON chunk, then `[DONE]`; when the upstream "
                'fails mid-stream the last event is `{"error": {...}}` and no `[DONE]` follows.'
            ),
            "type": "object",
            "required": ["data"],
            "properties": {
                "data": {"type": "string"},
                "event": {"type": "string"},
                "id": {"type": "string"},
                "retry": {"type": "integer"},
            },
        }
    }
}


def _model_operation(summary: str, request: str, answer: str) -> Schema:
    success: Schema = {
        "description": "The upstream's answer, or an event stream when `stream` is true.",
        "headers": _trace_headers(required=True),
        "content": {JSON_TYPE: {"schema": _ref(answer)}, **_EVENT_STREAM},
    }
    return {
        "post": {
            "summary": summary,
            "operationId": answer[0].lower() + answer[1:],
            "requestBody": {
                "required": True,
                "content": {JSON_TYPE: {"schema": _ref(request)}},
            },
            "responses": _model_responses(success),
        }
    }


def _anthropic_operation(
    summary: str, operation_id: str, answer: Schema, required: list[str], routed: bool = True
) -> Schema:
    """An Anthropic-shaped endpoint: its own errors use Anthropic's error body; 405 and
    429 (answered before the endpoint runs) stay OpenAI-shaped.  ``routed``: a model
    answers (the routing headers are set; a stream is possible)."""
    success: Schema = {
        "description": "The answer, or Anthropic's event stream when `stream` is true.",
        "headers": _trace_headers(required=routed),
        "content": {JSON_TYPE: {"schema": answer}, **(_EVENT_STREAM if routed else {})},
    }
    responses = {}
    for status, response in _model_responses(success).items():
        if status in ("200", "405", "429"):
            responses[status] = response
            continue
        shaped = {**response, "content": {JSON_TYPE: {"schema": _ref("AnthropicError")}}}
        responses[status] = shaped
    return {
        "post": {
            "summary": summary,
            "operationId": operation_id,
            "requestBody": {
                "required": True,
                "content": {JSON_TYPE: {"schema": anthropic_request(required, routed)}},
            },
            "responses": responses,
        }
    }


def _probe(summary: str, operation_id: str, responses: Schema) -> Schema:
    return {
        "get": {
            "summary": summary,
            "operationId": operation_id,
            "security": [],
            "responses": {**responses, "405": _NOT_ALLOWED},
        }
    }


def build_spec() -> Schema:
    """The OpenAPI document; nested parts are shared module constants: do not mutate."""
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "polyroute gateway",
            "version": __version__,
            "description": (
                "OpenAI-compatible LLM router. Every error is "
                '`{"error": {"message", "type", "code", "param"}}`. Gateway API keys are '
                "optional: when `server.api_keys` is configured, `/v1/*` needs "
                "`Authorization: Bearer <key>` (or `x-api-key: <key>`), else 401."
            ),
        },
        "security": [{}, {"bearerAuth": []}, {"apiKeyHeader": []}],
        "paths": {
            "/v1/chat/completions": _model_operation(
                "Route and answer a chat completion.", "ChatCompletionRequest", "ChatCompletion"
            ),
            "/v1/completions": _model_operation(
                "Route and answer a text completion.", "CompletionRequest", "Completion"
            ),
            "/v1/messages": _anthropic_operation(
                "Route and answer an Anthropic Messages request.",
                "createMessage",
                {"type": "object", "required": ["type", "role", "content"]},
                ["messages", "max_tokens"],
            ),
            "/v1/messages/count_tokens": _anthropic_operation(
                "Estimate a Messages request's input tokens (locally, no model called).",
                "countTokens",
                {"type": "object", "required": ["input_tokens"]},
                ["messages"],
                routed=False,
            ),
            "/v1/embeddings": {
                "post": {
                    "summary": "Embeddings from the named embedding model (`kind: embedding`; "
                    "not routed: `auto` is a 400).",
                    "operationId": "createEmbedding",
                    "requestBody": {
                        "required": True,
                        "content": {JSON_TYPE: {"schema": EMBEDDINGS_REQUEST}},
                    },
                    "responses": _model_responses(
                        _json(
                            "The upstream's embeddings (`model` names the configured model).",
                            {"type": "object", "required": ["data"]},
                            _trace_headers(required=True),
                        )
                    ),
                }
            },
            "/v1/responses": {
                "post": {
                    "summary": "Route and answer an OpenAI Responses API request (stored unless "
                    "`store: false`; `previous_response_id` continues a stored one).",
                    "operationId": "createResponse",
                    "requestBody": {
                        "required": True,
                        "content": {JSON_TYPE: {"schema": RESPONSES_REQUEST}},
                    },
                    "responses": _model_responses(
                        {
                            "description": "The Response, or its typed event stream.",
                            "headers": _trace_headers(required=True),
                            "content": {
                                JSON_TYPE: {"schema": {"type": "object", "required": ["id"]}},
                                **_EVENT_STREAM,
                            },
                        }
                    ),
                }
            },
            "/v1/responses/{response_id}": {
                verb: {
                    "summary": summary,
                    "operationId": op,
                    "parameters": [
                        {
                            "name": "response_id",
                            "in": "path",
                            "required": True,
                            "schema": {"type": "string"},
                        }
                    ],
                    "responses": {
                        "200": _json("The stored response.", {"type": "object"}),
                        "401": _UNAUTHORIZED,
                        "404": _error("No such response for this key (`response_not_found`)."),
                        "405": _NOT_ALLOWED,
                        "429": _OVERLOADED,
                    },
                }
                for verb, summary, op in (
                    ("get", "A stored response (this key's only).", "getResponse"),
                    ("delete", "Forget a stored response.", "deleteResponse"),
                )
            },
            "/v1/models": {
                "get": {
                    "summary": "`auto`, the profiles and the backends.",
                    "operationId": "listModels",
                    "responses": {
                        "200": _json("The models a client may ask for.", _ref("ModelList")),
                        "401": _UNAUTHORIZED,
                        "405": _NOT_ALLOWED,
                        "429": _OVERLOADED,
                    },
                }
            },
            "/v1/models/{model}": {
                "get": {
                    "summary": "One model id of the list (`auto`, a profile or a backend).",
                    "operationId": "retrieveModel",
                    "parameters": [
                        {
                            "name": "model",
                            "in": "path",
                            "required": True,
                            "schema": {"type": "string"},
                        }
                    ],
                    "responses": {
                        "200": _json("The model.", _ref("Model")),
                        "401": _UNAUTHORIZED,
                        "404": _error("No such model (`model_not_found`)."),
                        "405": _NOT_ALLOWED,
                        "429": _OVERLOADED,
                    },
                }
            },
            "/v1/route": {
                "post": {
                    "summary": "Explain where a request would go (no model is called).",
                    "operationId": "route",
                    "requestBody": {
                        "required": True,
                        "content": {JSON_TYPE: {"schema": _ref("RouteRequest")}},
                    },
                    "responses": {
                        "200": _json("The routing trace.", _ref("RouteTrace")),
                        "400": _INVALID,
                        "401": _UNAUTHORIZED,
                        "403": _error("Refused by a rule or plugin (`blocked`)."),
                        "404": _error("Unknown `model` (`model_not_found`)."),
                        "405": _NOT_ALLOWED,
                        "408": _BODY_TIMEOUT,
                        "413": _TOO_LARGE,
                        "429": _OVERLOADED,
                        "503": _error("No decision matched (`no_route`)."),
                    },
                }
            },
            "/v1/feedback": {
                "post": {
                    "summary": "Rate a served request of this key (needs `feedback:` in the "
                    "config); the last rating counts.",
                    "operationId": "feedback",
                    "requestBody": {
                        "required": True,
                        "content": {JSON_TYPE: {"schema": FEEDBACK_REQUEST}},
                    },
                    "responses": {
                        "204": {"description": "Recorded."},
                        "400": _INVALID,
                        "401": _UNAUTHORIZED,
                        "404": _error(
                            "No such trace for this key, expired, or feedback is not enabled "
                            "(`trace_not_found`)."
                        ),
                        "405": _NOT_ALLOWED,
                        "408": _BODY_TIMEOUT,
                        "413": _TOO_LARGE,
                        "429": _OVERLOADED,
                        "503": _error("The trace store does not answer (`store_unavailable`)."),
                    },
                }
            },
            "/healthz": _probe(
                "Liveness: the process serves HTTP.",
                "healthz",
                {"200": _json("Alive.", _ref("Health"))},
            ),
            "/readyz": _probe(
                "Readiness: started and at least one backend's circuit is not open.",
                "readyz",
                {
                    "200": _json("Ready.", _ref("Readiness")),
                    "503": _json("Not ready.", _ref("Readiness")),
                },
            ),
            "/metrics": _probe(
                "Prometheus metrics, text exposition format 0.0.4 (see polyroute.server.metrics).",
                "metrics",
                {
                    "200": {
                        "description": "The metrics.",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    }
                },
            ),
            "/openapi.json": _probe(
                "This document.",
                "openapi",
                {"200": _json("The OpenAPI 3.1 description.", {"type": "object"})},
            ),
        },
        "components": {
            "schemas": SCHEMAS,
            "headers": {
                name: {"description": text, "required": True, "schema": _HEADER_SCHEMAS[name]}
                for name, text in _RESPONSE_HEADERS.items()
            },
            "securitySchemes": {
                "bearerAuth": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "A gateway key (`polyroute keys new`).",
                },
                "apiKeyHeader": {
                    "type": "apiKey",
                    "in": "header",
                    "name": "x-api-key",
                    "description": "The same key, for clients that cannot send a bearer token.",
                },
            },
        },
    }


SPEC_BYTES = orjson.dumps(build_spec())


async def openapi_endpoint(http: HttpRequest) -> Response:
    return Response(SPEC_BYTES, media_type=JSON_TYPE)
