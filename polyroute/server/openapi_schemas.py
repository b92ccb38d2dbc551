"""The component and request-body schemas of the gateway's OpenAPI document
(``polyroute.server.openapi`` assembles the paths from them)."""

from __future__ import annotations

from typing import Any

from polyroute.server.security import STEERING_FIELDS

Schema = dict[str, Any]


def _ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


_MODEL = {
    "type": "string",
    "minLength": 1,
    "default": "auto",
    "description": "`auto`, a profile name or a backend name.",
}
_STREAM = {"type": "boolean", "description": "Answer as server-sent events."}
# present-but-forbidden fields: upstream URLs, keys and headers come from the config only
_NO_STEERING = {name: False for name in sorted(STEERING_FIELDS)}

_TRACE_FIELDS = [
    "trace_id", "client", "requested_model", "decision", "signals", "candidates", "estimates",
    "attempts", "model", "outcome", "estimated_cost_usd",
]  # fmt: skip

SCHEMAS: dict[str, Schema] = {
    "Error": {
        "type": "object",
        "required": ["message", "type", "code", "param"],
        "properties": {
            "message": {"type": "string"},
            "type": {"type": "string"},
            "code": {"type": "string"},
            "param": {"type": ["string", "null"]},
        },
    },
    "ErrorResponse": {
        "type": "object",
        "required": ["error"],
        "properties": {"error": _ref("Error")},
    },
    "Message": {
        "type": "object",
        "required": ["role"],
        "properties": {
            "role": {"type": "string"},
            "content": {
                "description": "A string, a list of content parts, or null.",
                "type": ["string", "array", "null"],
            },
        },
        "additionalProperties": True,
    },
    "Messages": {"type": "array", "minItems": 1, "items": _ref("Message")},
    "ChatCompletionRequest": {
        "type": "object",
        "required": ["messages"],
        "properties": {
            "model": _MODEL,
            "stream": _STREAM,
            "messages": _ref("Messages"),
            **_NO_STEERING,
        },
        "additionalProperties": True,
    },
    "CompletionRequest": {
        "type": "object",
        "required": ["prompt"],
        "properties": {
            "model": _MODEL,
            "stream": _STREAM,
            "prompt": {
                "oneOf": [
                    {"type": "string"},
                    {"type": "array", "minItems": 1, "items": {"type": "string"}},
                ]
            },
            **_NO_STEERING,
        },
        "additionalProperties": True,
    },
    "RouteRequest": {
        "description": (
            "A chat request, or a `prompt` string standing for one user message "
            "(used only when `messages` is absent)."
        ),
        "type": "object",
        "properties": {"model": _MODEL, "stream": _STREAM, "messages": _ref("Messages")},
        "anyOf": [
            {"required": ["messages"]},
            {"required": ["prompt"], "properties": {"prompt": {"type": "string"}}},
        ],
        "additionalProperties": True,
    },
    "ChatCompletion": {
        "description": "The upstream's answer (OpenAI shape); `model` names the backend.",
        "type": "object",
        "properties": {
            "id": {"type": "string"},
            "object": {"type": "string"},
            "created": {"type": "integer"},
            "model": {"type": "string"},
            "choices": {"type": "array", "items": {"type": "object"}},
            "usage": {"type": "object"},
        },
    },
    "Completion": {
        "description": "The upstream's answer (OpenAI shape); `model` names the backend.",
        "type": "object",
        "properties": {
            "id": {"type": "string"},
            "object": {"type": "string"},
            "model": {"type": "string"},
            "choices": {"type": "array", "items": {"type": "object"}},
            "usage": {"type": "object"},
        },
    },
    "RouteTrace": {
        "description": "Where the request would go and why; no model is called.",
        "type": "object",
        "required": _TRACE_FIELDS,
        "properties": {
            "trace_id": {"type": "string"},
            "client": {"type": "string"},
            "requested_model": {"type": "string"},
            "decision": {"type": "string"},
            "signals": {
                "type": "object",
                "additionalProperties": {
                    "type": ["boolean", "number", "string", "array", "null"],
                    "items": {"type": "string"},
                },
            },
            "candidates": {"type": "array", "items": {"type": "string"}},
            "estimates": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["model", "cost_usd"],
                    "properties": {
                        "model": {"type": "string"},
                        "cost_usd": {"type": ["number", "null"]},
                        "quality": {"type": ["number", "null"]},
                        "latency_ms": {"type": ["number", "null"]},
                    },
                },
            },
            "attempts": {"type": "array", "items": {"type": "object"}},
            "model": {"type": "string"},
            "outcome": {"type": "string"},
            "estimated_cost_usd": {"type": ["number", "null"]},
            "overhead_ms": {"type": "number"},
            "upstream_ms": {"type": "number"},
        },
    },
    "Model": {
        "type": "object",
        "required": ["id", "object", "created", "owned_by"],
        "properties": {
            "id": {"type": "string"},
            "object": {"const": "model"},
            "created": {"type": "integer"},
            "owned_by": {"type": "string"},
        },
    },
    "AnthropicError": {
        "type": "object",
        "required": ["type", "error"],
        "properties": {
            "type": {"const": "error"},
            "error": {
                "type": "object",
                "required": ["type", "message"],
                "properties": {"type": {"type": "string"}, "message": {"type": "string"}},
            },
        },
    },
    "ModelList": {
        "type": "object",
        "required": ["object", "data"],
        "properties": {
            "object": {"const": "list"},
            "data": {"type": "array", "items": _ref("Model")},
        },
    },
    "Health": {
        "type": "object",
        "required": ["status"],
        "properties": {"status": {"const": "ok"}},
    },
    "Readiness": {
        "type": "object",
        "required": ["status", "backends"],
        "properties": {
            "status": {"enum": ["ready", "not_ready"]},
            "backends": {
                "type": "object",
                "description": "Circuit-breaker state of each backend.",
                "additionalProperties": {"enum": ["closed", "open", "half_open"]},
            },
        },
    },
}


_TOKEN: Schema = {"type": "integer", "minimum": 0}
EMBEDDINGS_REQUEST: Schema = {
    "type": "object",
    "required": ["model", "input"],
    "properties": {
        "model": {"type": "string", "minLength": 1, "maxLength": 256},
        **_NO_STEERING,
        "input": {
            "anyOf": [
                {"type": "string"},
                {"type": "array", "minItems": 1, "items": {"type": "string"}},
                {"type": "array", "minItems": 1, "items": _TOKEN},
                {
                    "type": "array",
                    "minItems": 1,
                    "items": {"type": "array", "minItems": 1, "items": _TOKEN},
                },
            ]
        },
    },
}
RESPONSES_REQUEST: Schema = {
    "type": "object",
    "required": ["input"],
    "properties": {
        "model": {"type": ["string", "null"], "maxLength": 128},
        "input": {
            "anyOf": [
                {"type": "string"},
                {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "required": ["role", "content"],
                        "properties": {
                            "role": {"enum": ["user", "assistant", "system", "developer"]},
                            "content": {"type": "string"},
                        },
                    },
                },
            ]
        },
        "stream": {"type": ["boolean", "null"]},
        "store": {"type": ["boolean", "null"]},
        **_NO_STEERING,
    },
}


def anthropic_request(required: list[str], routed: bool) -> Schema:
    """The part of a Messages request this document describes (the codec takes more:
    content blocks, tools, images; see ``polyroute.codecs.anthropic_request``)."""
    return {
        "type": "object",
        "required": required,
        "properties": {
            "model": {"type": "string", "minLength": 1, **({"maxLength": 128} if routed else {})},
            **({"max_tokens": {"type": "integer", "minimum": 1}} if routed else {}),
            "system": {"type": ["string", "null"]},
            **({"stream": {"type": "boolean"}} if routed else {}),
            **(_NO_STEERING if routed else {}),
            "messages": {
                "type": "array",
                "minItems": 1,
                "items": {
                    "type": "object",
                    "required": ["role", "content"],
                    "properties": {
                        "role": {"enum": ["user", "assistant"]},
                        "content": {"type": "string"},
                    },
                },
            },
        },
    }
