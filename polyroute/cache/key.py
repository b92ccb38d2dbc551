"""What a cached answer is keyed by: the *scope* (everything but the prompt) and the prompt text.

A semantic cache may only answer a request with an answer given to a request
that asked the same thing in the same context.  The prompt (the last user
message) is compared by meaning; everything else must match *exactly*, so it is
hashed into the scope key and a lookup only searches entries of that scope.

The scope is the sha256 of the canonical JSON (sorted keys, integral floats as
ints) of:

- the tenant (the gateway key name): a hit never crosses tenants;
- the routing decision and the endpoint (``/v1/chat/completions``, ``/v1/messages``, ...);
- every top-level field of the body except the ones listed in :data:`IGNORED_FIELDS`,
  i.e. ``model``, the system prompt (Anthropic's top-level ``system``), ``tools``,
  ``tool_choice``, ``functions``, ``function_call``, ``response_format``, every
  sampling parameter (``temperature``, ``top_p``, ``top_k``, ``max_tokens``,
  ``max_completion_tokens``, ``n``, ``stop``/``stop_sequences``, ``seed``,
  ``presence_penalty``, ``frequency_penalty``, ``logit_bias``, ``logprobs``,
  ``top_logprobs``), ``stream`` and ``stream_options`` (the cached bytes are a wire
  format), ``reasoning_effort``, ``thinking`` and any field added later: a field we
  do not know is assumed to change the answer;
- every message but the last user message, in order (system/developer messages,
  earlier turns, tool results, an assistant prefill after the prompt); the last
  user message keeps its other fields (``name``) and its position, only its
  ``content`` is replaced by a marker.

:data:`IGNORED_FIELDS` are ``user`` and ``metadata`` (ids for abuse monitoring and
bookkeeping: they do not change the answer).  Entries are therefore shared by the
end users of one tenant; to isolate end users, pass ``tenant=f"{key}:{user}"``.

:func:`cacheable` refuses sampled requests: ``temperature > 0``, *and a missing
temperature* (the OpenAI and Anthropic default is 1), unless ``allow_sampling``;
``n > 1`` is never cacheable; nor is a prompt that is not plain text (images,
audio, tool results in the last user message) or a body without a user message.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

import orjson

IGNORED_FIELDS = frozenset({"user", "metadata"})
_PROMPT_MARKER = "\x00<prompt>\x00"


def _last_user_index(messages: Any) -> int | None:
    if not isinstance(messages, list):
        return None
    for i in range(len(messages) - 1, -1, -1):
        msg = messages[i]
        if isinstance(msg, Mapping) and msg.get("role") == "user":
            return i
    return None


def _text_of(content: Any) -> str | None:
    """The text of a message ``content``: a string, or a list of text parts only."""
    if isinstance(content, str):
        return content
    if not isinstance(content, list) or not content:
        return None
    parts: list[str] = []
    for part in content:
        if not isinstance(part, Mapping) or part.get("type") != "text":
            return None
        text = part.get("text")
        if not isinstance(text, str):
            return None
        parts.append(text)
    return "\n".join(parts)


def prompt_text(body: Mapping[str, Any]) -> str | None:
    """The last user message's text, or None when there is none or it is not plain text."""
    messages = body.get("messages")
    i = _last_user_index(messages)
    if i is None or not isinstance(messages, list):
        return None
    return _text_of(messages[i].get("content"))


def _sampled(body: Mapping[str, Any]) -> bool:
    temperature = body.get("temperature", 1.0)
    if temperature is None:  # explicit null: the upstream default (1)
        return True
    if isinstance(temperature, bool) or not isinstance(temperature, int | float):
        return True  # not a number: treat as sampled (the upstream will reject it anyway)
    return float(temperature) > 0.0


def cacheable(body: Mapping[str, Any], allow_sampling: bool = False) -> bool:
    """Whether a request may be answered from (and stored in) the cache.

    False when the prompt is not plain text, when ``n`` asks for several choices, and,
    unless ``allow_sampling``, when the request samples (``temperature`` > 0 or absent).
    """
    if prompt_text(body) is None:
        return False
    n = body.get("n", 1)
    if n is not None and n != 1:
        return False
    return allow_sampling or not _sampled(body)


def _canonical(value: Any) -> Any:
    """Integral floats become ints (``0.0`` and ``0`` are one temperature); containers recurse."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, Mapping):
        return {str(k): _canonical(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_canonical(v) for v in value]
    return value


def scope_key(body: Mapping[str, Any], endpoint: str, decision: str, tenant: str) -> str:
    """The sha256 (hex) of everything that must match exactly for a cached answer to apply."""
    context = {k: v for k, v in body.items() if k not in IGNORED_FIELDS and k != "messages"}
    messages = body.get("messages")
    if isinstance(messages, list):
        kept = list(messages)
        i = _last_user_index(messages)
        if i is not None:
            kept[i] = {**messages[i], "content": _PROMPT_MARKER}
        context["messages"] = kept
    elif messages is not None:
        context["messages"] = messages
    doc = {"tenant": tenant, "decision": decision, "endpoint": endpoint, "body": context}
    raw = orjson.dumps(_canonical(doc), option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(raw).hexdigest()
