"""Streams as typed sequences of chunks the response plugins can watch and edit.

:class:`TappedStream` passes an answer's chunks through the plugins' taps;
:func:`replay` turns a whole answer (a cache hit) into a well-formed stream of
chunks, as the upstream would have sent it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence

from polyroute.plans.base import StreamStart
from polyroute.plugins.base import ChunkTap
from polyroute.types import JSON, Endpoint, UpstreamStream


class TappedStream:
    """``rest`` with every chunk shown to ``taps`` in order (a tap drops a chunk by
    clearing it: the taps after it do not see it); after the last chunk each tap's
    ``end`` may add chunks, which the taps after it see too.  A cut stream raises
    as it would have, and no tap's ``end`` runs (nothing half-done is cached)."""

    def __init__(self, rest: UpstreamStream, taps: Sequence[ChunkTap]) -> None:
        self._rest = rest
        self._taps = tuple(taps)

    def __aiter__(self) -> AsyncIterator[JSON]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[JSON]:
        taps = self._taps
        async for chunk in self._rest:
            for tap in taps:
                tap.chunk(chunk)
                if not chunk:
                    break  # a tap cleared it: dropped
            else:
                yield chunk
        for i, tap in enumerate(taps):
            for extra in await tap.end():
                for later in taps[i + 1 :]:
                    later.chunk(extra)
                if extra:
                    yield extra

    async def aclose(self) -> None:
        await self._rest.aclose()


def tapped(start: StreamStart, taps: Sequence[ChunkTap]) -> StreamStart:
    """``start`` seen through ``taps`` (the first chunk included)."""
    if not taps:
        return start
    for tap in taps:
        tap.chunk(start.first)
    return StreamStart(start.model, start.first, TappedStream(start.rest, taps))


class ReplayStream:
    """Chunks known in advance, as a stream."""

    def __init__(self, chunks: Sequence[JSON]) -> None:
        self._chunks = list(chunks)

    def __aiter__(self) -> AsyncIterator[JSON]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[JSON]:
        for chunk in self._chunks:
            yield chunk

    async def aclose(self) -> None:
        self._chunks.clear()


def replay(answer: JSON, endpoint: Endpoint, model: str) -> StreamStart:
    """A whole answer as the stream an upstream would have sent: per choice, the role,
    then the content, then the finish reason (chat); the text and finish (completions).
    Usage, when the answer has it, rides on the last chunk."""
    base = {"id": answer.get("id", ""), "created": answer.get("created", 0), "model": model}
    chunks: list[JSON] = []
    choices = [c for c in answer.get("choices") or [] if isinstance(c, dict)]
    for i, choice in enumerate(choices):
        index = choice.get("index", i)
        finish = choice.get("finish_reason") or "stop"
        if endpoint == "completions":
            obj = "text_completion"
            pieces = [{"index": index, "text": choice.get("text") or "", "finish_reason": None}]
            pieces.append({"index": index, "text": "", "finish_reason": finish})
        else:
            obj = "chat.completion.chunk"
            message = choice.get("message") or {}
            delta = {k: v for k, v in message.items() if k != "role" and v is not None}
            role = message.get("role", "assistant")
            pieces = [
                {"index": index, "delta": {"role": role, "content": ""}},
                {"index": index, "delta": delta},
                {"index": index, "delta": {}, "finish_reason": finish},
            ]
        chunks.extend({**base, "object": obj, "choices": [p]} for p in pieces)
    if not chunks:
        chunks.append({**base, "object": "chat.completion.chunk", "choices": []})
    if answer.get("usage") is not None:
        chunks[-1]["usage"] = answer["usage"]
    return StreamStart(model, chunks[0], ReplayStream(chunks[1:]))


def chunk_texts(chunk: JSON) -> list[tuple[int, JSON, str]]:
    """The text-bearing parts of a chunk: (choice index, the dict holding the text, its
    key) per choice: ``delta.content`` for chat, ``text`` for completions.  A plugin
    edits the text in place through ``holder[key]``."""
    found: list[tuple[int, JSON, str]] = []
    for i, choice in enumerate(chunk.get("choices") or ()):
        if not isinstance(choice, dict):
            continue
        index = choice.get("index", i)
        index = index if isinstance(index, int) else i
        delta = choice.get("delta")
        if isinstance(delta, dict) and isinstance(delta.get("content"), str):
            found.append((index, delta, "content"))
        elif isinstance(choice.get("text"), str):
            found.append((index, choice, "text"))
    return found


__all__ = ["ReplayStream", "TappedStream", "chunk_texts", "replay", "tapped"]
