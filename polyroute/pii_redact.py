"""PII redaction before the upstream, restoration in its answer: pure functions, no I/O.

A ``Redaction`` lives for one request.  ``redact(text)`` replaces every value found
(``polyroute.signals.pii_recognizers.spans``; PERSON and the other NER types through
``polyroute.signals.pii_person``) by a placeholder ``<TYPE_n>``, ``n`` counting from 1
per type in order of first sight.  The same value gives the same placeholder in every
text of the request, so the upstream can still tell two people or two cards apart.
``mapping`` maps each placeholder back to its value.

``restore(text, mapping)`` puts the values back in an answer; ``StreamRestorer`` does
the same for an answer that arrives in pieces, holding back a tail that may be the
start of a placeholder (``<EMAIL_ADD``) until the next piece tells.  Only placeholders
of ``mapping`` are restored, exactly as written: a model that rewrites one
(``<email_address_1>``, ``EMAIL_ADDRESS_1``) gets it back as it wrote it.

``redact_body(body, endpoint, redaction)`` returns a copy of an OpenAI request body
with every text the upstream reads redacted: for ``chat`` the content of every
message, whatever its role (string content and ``text`` parts; system, developer,
user, assistant and tool messages alike: an earlier answer holds restored values, a
tool result holds whatever the tool read), and the ``arguments`` of assistant tool
calls; for ``completions`` the ``prompt`` (a string or a list of strings; token-id
prompts cannot be read and pass unchanged).  The input body is never modified.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Mapping
from typing import Any, Literal

from polyroute.signals.pii_recognizers import STRUCTURED, SpanFinder, span_finder

TextMap = Callable[[str], str]
_PLACEHOLDER = re.compile(r"<([A-Z][A-Z0-9_]*)_(\d+)>")
_NOT_NAME = re.compile(r"[^A-Z0-9_]")


class Redaction:
    """The placeholders of one request: ``redact`` each text, then ``mapping`` to restore.

    ``entities``: the types to replace (default: the structured ones).  ``finder``:
    the span finder to use instead of building one for ``entities``: a plugin builds
    ``span_finder(entities)`` once and passes it to each request's ``Redaction``.
    A placeholder the client wrote itself (``<EMAIL_ADDRESS_1>`` in a prompt) is
    never given to a value found after it, nor to any value if the text was passed
    to ``reserve`` first (``redact_body`` does so for the whole body).
    """

    def __init__(
        self, entities: Collection[str] = STRUCTURED, *, finder: SpanFinder | None = None
    ) -> None:
        self._finder = finder if finder is not None else span_finder(entities)
        self._by_value: dict[tuple[str, str], str] = {}
        self._mapping: dict[str, str] = {}
        self._counts: dict[str, int] = {}
        self._taken: set[str] = set()

    @property
    def mapping(self) -> dict[str, str]:
        """Placeholder -> original value (a copy)."""
        return dict(self._mapping)

    @property
    def found(self) -> frozenset[str]:
        """The entity types replaced so far."""
        return frozenset(self._counts)

    def reserve(self, text: str) -> None:
        """Never give a value a placeholder that ``text`` holds already (the client
        wrote ``<EMAIL_ADDRESS_1>`` itself): call on every text before redacting any."""
        if "<" in text:
            self._taken.update(m.group() for m in _PLACEHOLDER.finditer(text))

    def redact(self, text: str) -> str:
        """``text`` with every value found replaced by its placeholder."""
        found = self._finder(text)
        if not found:
            return text
        self.reserve(text)
        out: list[str] = []
        last = 0
        for span in found:
            out.append(text[last : span.start])
            out.append(self._placeholder(span.entity, span.value))
            last = span.end
        out.append(text[last:])
        return "".join(out)

    def _placeholder(self, entity: str, value: str) -> str:
        entity = _NOT_NAME.sub("_", entity.upper()) or "PII"  # a placeholder restore reads
        if not entity[0].isalpha():
            entity = "PII_" + entity
        key = (entity, value)
        known = self._by_value.get(key)
        if known is not None:
            return known
        n = self._counts.get(entity, 0)
        while True:
            n += 1
            placeholder = f"<{entity}_{n}>"
            if placeholder not in self._taken:
                break
        self._counts[entity] = n
        self._by_value[key] = placeholder
        self._mapping[placeholder] = value
        return placeholder


def restore(text: str, mapping: Mapping[str, str]) -> str:
    """``text`` with every placeholder of ``mapping`` replaced by its value, in one pass
    (a value that looks like a placeholder is not replaced again)."""
    if not mapping or "<" not in text:
        return text
    return _PLACEHOLDER.sub(lambda m: mapping.get(m.group(), m.group()), text)


class StreamRestorer:
    """``restore`` over an answer that arrives in pieces.

    ``feed(piece)`` returns the restored text that is safe to emit now: everything but
    a tail that is a proper prefix of one of the placeholders (so at most the longest
    placeholder, less one character, is held).  ``flush()`` returns what is held at
    the end.  Any split of a text gives, joined, ``restore`` of the whole text.
    """

    def __init__(self, mapping: Mapping[str, str]) -> None:
        self._mapping = dict(mapping)
        self._prefixes = frozenset(p[:i] for p in self._mapping for i in range(1, len(p)))
        self._held = ""

    def feed(self, piece: str) -> str:
        if not self._mapping:
            return piece
        text = self._held + piece
        cut = text.rfind("<")
        if cut >= 0 and text[cut:] in self._prefixes:
            self._held = text[cut:]
            text = text[:cut]
        else:
            self._held = ""
        return restore(text, self._mapping)

    def flush(self) -> str:
        """The held tail (it was not a placeholder after all)."""
        held, self._held = self._held, ""
        return held


def redact_body(
    body: Mapping[str, Any], endpoint: Literal["chat", "completions"], redaction: Redaction
) -> dict[str, Any]:
    """A copy of an OpenAI request ``body`` with the texts the upstream reads redacted.

    Placeholders the client wrote anywhere in the body are reserved first, so none of
    them is given to a value found in an earlier text.
    """

    def reserve(text: str) -> str:
        redaction.reserve(text)
        return text

    _map_body(body, endpoint, reserve)
    return _map_body(body, endpoint, redaction.redact)


def _map_body(
    body: Mapping[str, Any], endpoint: Literal["chat", "completions"], fn: TextMap
) -> dict[str, Any]:
    out = dict(body)
    if endpoint == "chat":
        messages = body.get("messages")
        if isinstance(messages, list):
            out["messages"] = [_map_message(m, fn) for m in messages]
    else:
        prompt = body.get("prompt")
        if isinstance(prompt, str):
            out["prompt"] = fn(prompt)
        elif isinstance(prompt, list):
            out["prompt"] = [fn(p) if isinstance(p, str) else p for p in prompt]
    return out


def _map_message(message: Any, fn: TextMap) -> Any:
    if not isinstance(message, dict):
        return message
    out = dict(message)
    content = message.get("content")
    if isinstance(content, str):
        out["content"] = fn(content)
    elif isinstance(content, list):
        out["content"] = [_map_part(p, fn) for p in content]
    calls = message.get("tool_calls")
    if isinstance(calls, list):
        out["tool_calls"] = [_map_call(c, fn) for c in calls]
    if isinstance(message.get("function_call"), dict):
        out["function_call"] = _map_function(message["function_call"], fn)
    return out


def _map_part(part: Any, fn: TextMap) -> Any:
    if isinstance(part, dict) and part.get("type") == "text" and isinstance(part.get("text"), str):
        return {**part, "text": fn(part["text"])}
    return part


def _map_call(call: Any, fn: TextMap) -> Any:
    if isinstance(call, dict) and isinstance(call.get("function"), dict):
        return {**call, "function": _map_function(call["function"], fn)}
    return call


def _map_function(function: dict[str, Any], fn: TextMap) -> dict[str, Any]:
    arguments = function.get("arguments")
    if isinstance(arguments, str):
        return {**function, "arguments": fn(arguments)}
    return dict(function)
