"""OpenAI ``chat.completion.chunk`` s -> Anthropic Messages stream events (pure, stateful).

The event sequence is Anthropic's::

    message_start, ping,
    (content_block_start, content_block_delta*, content_block_stop)*,
    message_delta (stop_reason, usage), message_stop

A text block opens on the first text delta; each new tool call (a new ``index`` in
``delta.tool_calls``) closes the open block and opens a ``tool_use`` block whose
argument fragments become ``input_json_delta`` s.  OpenAI-compatible servers stream
tool calls one after another; a late fragment for a call whose block is already closed
cannot be sent and is dropped.  ``message_delta`` reports the usage chunk's tokens, or
without one an estimate (:func:`polyroute.tokens.estimate_tokens`) of the streamed text.
"""

from __future__ import annotations

from typing import Any

from polyroute.codecs.anthropic_response import (
    Event,
    anthropic_usage,
    message_id,
    obj,
    stop_reason,
    tool_id,
)
from polyroute.tokens import estimate_tokens
from polyroute.types import JSON


class StreamEncoder:
    """Turns the pipeline's OpenAI chunks into Anthropic ``(event name, data)`` pairs.

    ``model`` is reported in ``message_start``; ``input_tokens`` there is the caller's
    estimate (the real count arrives with the usage chunk, in ``message_delta``).
    Call :meth:`feed` for every chunk and :meth:`finish` once, when the chunks end.
    """

    def __init__(self, model: str, input_tokens: int = 0) -> None:
        self.model = model
        self.input_tokens = input_tokens
        self.id = ""
        self._started = False
        self._finished = False
        self._next_index = 0
        self._open: str | int | None = None  # "text", or the OpenAI index of the open call
        self._open_index = 0
        self._calls: set[int] = set()  # OpenAI tool-call indexes that have had a block
        self._finish: Any = None
        self._matched: Any = None
        self._usage: JSON | None = None
        self._streamed: list[str] = []

    def feed(self, chunk: JSON) -> list[Event]:
        """The events for one OpenAI chunk (``message_start`` and ``ping`` before the first)."""
        if self._finished:
            return []
        events = self._start(chunk.get("id"))
        if isinstance(chunk.get("usage"), dict):
            self._usage = chunk["usage"]
        choices = chunk.get("choices")
        choice = obj(choices[0] if isinstance(choices, list) and choices else None)
        delta = obj(choice.get("delta"))
        text = delta.get("content") or delta.get("refusal")
        if isinstance(text, str) and text:
            events += self._text(text)
        calls = delta.get("tool_calls")
        for call in calls if isinstance(calls, list) else []:
            if isinstance(call, dict):
                events += self._tool(call)
        if choice.get("finish_reason") is not None:
            self._finish, self._matched = choice["finish_reason"], choice.get("stop_reason")
        return events

    def finish(self) -> list[Event]:
        """The closing events: the open block's stop, ``message_delta``, ``message_stop``."""
        if self._finished:
            return []
        events = self._start(None) + self._close()
        self._finished = True
        reason, sequence = stop_reason(self._finish, self._matched, bool(self._calls))
        if self._usage is not None:
            usage = anthropic_usage(self._usage)
        else:
            streamed = "".join(self._streamed)
            usage = {"output_tokens": estimate_tokens(streamed) if streamed else 0}
        delta = {"stop_reason": reason, "stop_sequence": sequence}
        events.append(("message_delta", {"type": "message_delta", "delta": delta, "usage": usage}))
        events.append(("message_stop", {"type": "message_stop"}))
        return events

    def _start(self, chunk_id: Any) -> list[Event]:
        if self._started:
            return []
        self._started = True
        self.id = message_id(chunk_id)
        message: JSON = {
            "id": self.id,
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": self.input_tokens, "output_tokens": 0},
        }
        return [
            ("message_start", {"type": "message_start", "message": message}),
            ("ping", {"type": "ping"}),
        ]

    def _open_block(self, key: str | int, block: JSON) -> list[Event]:
        events = self._close()
        self._open, self._open_index = key, self._next_index
        self._next_index += 1
        start = {"type": "content_block_start", "index": self._open_index, "content_block": block}
        events.append(("content_block_start", start))
        return events

    def _close(self) -> list[Event]:
        if self._open is None:
            return []
        self._open = None
        return [("content_block_stop", {"type": "content_block_stop", "index": self._open_index})]

    def _delta(self, delta: JSON) -> Event:
        data = {"type": "content_block_delta", "index": self._open_index, "delta": delta}
        return ("content_block_delta", data)

    def _text(self, text: str) -> list[Event]:
        opened = self._open == "text"
        events = [] if opened else self._open_block("text", {"type": "text", "text": ""})
        self._streamed.append(text)
        events.append(self._delta({"type": "text_delta", "text": text}))
        return events

    def _tool(self, call: JSON) -> list[Event]:
        index = call.get("index", 0)
        key = index if isinstance(index, int) and not isinstance(index, bool) else 0
        fn = obj(call.get("function"))
        events: list[Event] = []
        if key not in self._calls:
            self._calls.add(key)
            name = fn.get("name") if isinstance(fn.get("name"), str) else ""
            block: JSON = {
                "type": "tool_use",
                "id": tool_id(call.get("id")),
                "name": name,
                "input": {},
            }
            events = self._open_block(key, block)
        arguments = fn.get("arguments")
        if isinstance(arguments, str) and arguments and self._open == key:
            self._streamed.append(arguments)
            events.append(self._delta({"type": "input_json_delta", "partial_json": arguments}))
        return events
