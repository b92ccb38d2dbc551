"""``semantic_cache``: answer a request from an earlier answer to the same question, reworded.

    plugins:
      - {type: semantic_cache}                                   # memory, every decision
      - {type: semantic_cache, backend: redis, url: "redis://127.0.0.1:6379/0", ttl_s: 600}

A request is looked up by the meaning of its last user message (``polyroute.cache``:
one embedding, shared with the signals through the request's feature cache, and a
calibrated hit rule; on MiniLM by default a trained family model, so rewordings of one
request family match: ``similarity: cosine`` turns it off, ``similarity: DIR`` loads one
from ``polyroute train-cache``) within a scope that must match exactly: the tenant (the
gateway key's name), the decision, the endpoint, the system prompt and earlier
turns, tools, ``response_format`` and the sampling parameters.  So a hit never
crosses tenants or changes what was asked.  Within a scope, a prompt never matches one
that carries other numbers or quoted strings ("convert 5 usd" never answers "convert
50 usd"), and a long prompt (over 100 words: past what the encoder reads) only matches
the same text (``polyroute.cache.guards``).  A hit answers at once (no selection, no
upstream call), replayed as a stream when the client streams; a miss is stored
when its answer completes (a cut stream is not).  Requests that sample
(``temperature`` above 0, or absent: the upstream default is 1) are neither looked
up nor stored unless ``cache_sampled: true``.  A store that fails (Redis down) is a
miss and a warning, never a failed request.  Responses carry ``x-polyroute-cache:
hit|miss``; the trace says the similarity of a hit and how it matched (``match:
exact|semantic``).  A prompt repeated word for word (the same text after ``strip()``,
in the same scope) is answered by the index's exact lookup before any embedding: it is
what the semantic lookup would answer anyway, without the encoder's milliseconds.  A
scope holding no live entry (the same step tells: ``SemanticIndex.probe``, one round
trip on Redis) cannot hit either: say a conversation's later turn, whose earlier turns
are in the scope.  Such a miss goes on to the upstream at once, and the prompt is
embedded for the store in a worker thread meanwhile (the trace says ``scope: empty``).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace
from pathlib import Path
from typing import Literal

import orjson
from pydantic import Field

from polyroute.cache import (
    MemoryIndex,
    SemanticIndex,
    cacheable,
    default_similarity,
    prompt_text,
    scope_key,
)
from polyroute.cache.families import default_families_dir, load_families
from polyroute.cache.similarity import with_families
from polyroute.embed import Array, Encoder, serving_encoder
from polyroute.errors import ConfigError
from polyroute.plugins.base import (
    BasePlugin,
    ChunkTap,
    Context,
    PluginEnv,
    PluginOptions,
    Respond,
    Verdict,
)
from polyroute.signals.neural import embed_memo, is_blocking_encoder
from polyroute.types import JSON

_LOG = logging.getLogger("polyroute.cache")
_STATE = "semantic_cache.entry"
_TRANSPORT = frozenset({"stream", "stream_options"})
#: embeddings a cache runs ahead of their requests' answers at once (see ``_embed_later``)
MAX_BACKGROUND = 32


class SemanticCacheOptions(PluginOptions):
    backend: Literal["memory", "redis"] = "memory"
    url: str = "redis://127.0.0.1:6379/0"
    prefix: str = Field(default="polyroute:cache:", min_length=1)
    encoder: Literal["minilm", "static"] = "minilm"
    #: ``default`` (minilm: the shipped family model; static: cosine), ``cosine`` (the
    #: calibrated cosine alone), or the directory of a ``polyroute train-cache`` model
    similarity: str = Field(default="default", min_length=1)
    #: override the calibrated hit rule (see polyroute.cache.similarity)
    threshold: float | None = Field(default=None, ge=-1.0, le=1.0)
    accept: float | None = Field(default=None, ge=-1.0, le=1.0)
    margin: float | None = Field(default=None, ge=0.0, le=2.0)
    ttl_s: float = Field(default=3600.0, gt=0)
    max_entries: int = Field(default=10_000, ge=1)
    cache_sampled: bool = False


class SemanticCache(BasePlugin):
    Options = SemanticCacheOptions
    options: SemanticCacheOptions

    def setup(self, env: PluginEnv) -> None:
        o = self.options
        base = default_similarity(o.encoder)
        if o.similarity != "cosine" and not (o.similarity == "default" and o.encoder != "minilm"):
            path = default_families_dir() if o.similarity == "default" else o.similarity
            try:
                base = with_families(base, load_families(Path(env.base_dir) / path))
            except ConfigError as exc:
                raise ConfigError(f"{self.where}: similarity: {exc.message}") from None
        threshold = base.threshold if o.threshold is None else o.threshold
        accept = max(base.accept, threshold) if o.accept is None else o.accept
        margin = base.margin if o.margin is None else o.margin
        try:
            self.similarity = replace(base, threshold=threshold, accept=accept, margin=margin)
        except ConfigError as exc:
            raise ConfigError(f"{self.where}: {exc.message}") from None
        self.index: SemanticIndex
        if o.backend == "redis":
            from polyroute.cache.redis_index import RedisIndex

            self.index = RedisIndex(
                self.similarity,
                url=o.url,
                prefix=o.prefix,
                max_entries=o.max_entries,
                ttl_s=o.ttl_s,
            )
        else:
            self.index = MemoryIndex(self.similarity, max_entries=o.max_entries, ttl_s=o.ttl_s)
        self._blocking = is_blocking_encoder(o.encoder)
        self._batchers = env.batchers
        self._encoder: Encoder | None = None
        self._background = 0  # embeddings running ahead of their request's answer

    def warmup(self) -> None:
        self.encoder()

    def encoder(self) -> Encoder:
        if self._encoder is None:
            encoder = serving_encoder(self.options.encoder)
            encoder.encode(["warm up"])
            self._encoder = encoder
        return self._encoder

    async def on_request(self, ctx: Context) -> Verdict:
        request = ctx.request
        body = request.body
        if request.endpoint != "chat" or not cacheable(body, self.options.cache_sampled):
            ctx.trace.events.append({"plugin": "semantic_cache", "action": "skipped"})
            return None
        text = prompt_text(body)
        assert text is not None  # cacheable() checked it
        # the cache keeps typed answers and replays them either way: streaming is not part
        # of what was asked
        asked = {k: v for k, v in body.items() if k not in _TRANSPORT}
        scope = scope_key(asked, request.endpoint, ctx.decision, ctx.tenant)
        vector: Array | None = None  # stays None when the exact lookup answers
        try:
            probe = await self.index.probe(scope, text)
            hit = probe.hit
            if hit is None and not probe.populated:
                # nothing to match: embed for the store while the upstream answers
                ctx.trace.cache = "miss"
                ctx.trace.events.append(
                    {"plugin": "semantic_cache", "action": "miss", "scope": "empty"}
                )
                ctx.state[_STATE] = (scope, self._embed_later(ctx, text), text)
                return None
            if hit is None:
                vector = await self._embed_now(ctx, text)
                hit = await self.index.lookup(scope, vector, text)
        except Exception as exc:  # the cache is an optimisation: a failure is a miss
            _LOG.warning("semantic cache lookup failed: %s: %s", type(exc).__name__, exc)
            ctx.trace.cache = "miss"
            return None
        if hit is None:
            ctx.trace.cache = "miss"
            ctx.state[_STATE] = (scope, vector, text)
            return None
        answer: JSON = orjson.loads(hit.answer)
        ctx.trace.cache = "hit"
        ctx.trace.events.append(
            {
                "plugin": "semantic_cache",
                "action": "hit",
                "similarity": round(hit.similarity, 4),
                "match": "semantic" if vector is not None else "exact",
            }
        )
        return Respond(answer, model=str(answer.get("model", "")), outcome="cache_hit")

    def _embed(self, ctx: Context, text: str) -> Array:
        return embed_memo(ctx.request, self.encoder(), text)

    async def _embed_now(self, ctx: Context, text: str) -> Array:
        """The prompt's vector: inline for a cheap encoder; else batched with the requests
        in flight through the engine's encoder batchers (a worker thread per core)."""
        if not self._blocking:
            return self._embed(ctx, text)
        if self._batchers is None:  # a plugin built outside an engine
            return await asyncio.to_thread(self._embed, ctx, text)
        encoder = (
            self._encoder if self._encoder is not None else await asyncio.to_thread(self.encoder)
        )
        return await self._batchers.embed(ctx.request, encoder, text)

    def _embed_later(self, ctx: Context, text: str) -> asyncio.Future[Array] | None:
        """The embedding of ``text``, computing in a worker thread while the request goes
        on (its upstream call is I/O): a miss in an empty scope (say a conversation's
        later turn: its earlier turns are in the scope) waits for no encoder.

        At most ``MAX_BACKGROUND`` run ahead at once: a request that ends without an
        answer (a failing upstream) leaves its embedding running for nothing, and requests
        failing fast must not queue up work without bound.  Past the cap this returns None
        and the store embeds the answered prompt itself."""
        if self._background >= MAX_BACKGROUND:
            return None
        self._background += 1
        task = asyncio.ensure_future(self._embed_now(ctx, text))
        task.add_done_callback(self._finished)
        return task

    def _finished(self, task: asyncio.Future[Array]) -> None:
        self._background -= 1
        _retrieve(task)  # an unused failed task must not warn at exit

    async def _store(self, ctx: Context, answer: JSON) -> None:
        entry = ctx.state.pop(_STATE, None)
        if entry is None:
            return
        scope, vector, text = entry
        try:
            if isinstance(vector, asyncio.Future):
                vector = await vector
            elif vector is None:  # past MAX_BACKGROUND: embedded now, for the store only
                vector = await self._embed_now(ctx, text)
            await self.index.add(scope, vector, text, orjson.dumps(answer))
        except Exception as exc:
            _LOG.warning("semantic cache store failed: %s: %s", type(exc).__name__, exc)

    async def on_answer(self, ctx: Context, answer: JSON) -> JSON:
        await self._store(ctx, answer)
        return answer

    def on_stream(self, ctx: Context) -> ChunkTap | None:
        return _Collect(self, ctx) if _STATE in ctx.state else None

    async def aclose(self) -> None:
        await self.index.aclose()


def _retrieve(task: asyncio.Future[Array]) -> None:
    if not task.cancelled():
        task.exception()


class _Collect:
    """Rebuilds a streamed answer (content, role, finish reason per choice) and stores it
    once the stream completed."""

    def __init__(self, cache: SemanticCache, ctx: Context) -> None:
        self.cache = cache
        self.ctx = ctx
        self.head: JSON = {}
        self.texts: dict[int, list[str]] = {}
        self.finish: dict[int, str] = {}
        self.usage: JSON | None = None

    def chunk(self, chunk: JSON) -> None:
        if not self.head:
            self.head = {"id": chunk.get("id", ""), "created": chunk.get("created", 0)}
        if isinstance(chunk.get("usage"), dict):
            self.usage = chunk["usage"]
        for i, choice in enumerate(chunk.get("choices") or ()):
            if not isinstance(choice, dict):
                continue
            index = choice.get("index", i)
            index = index if isinstance(index, int) else i
            delta = choice.get("delta")
            if isinstance(delta, dict):
                if delta.get("tool_calls"):
                    self.ctx.state.pop(_STATE, None)  # tool calls are not cached
                if isinstance(delta.get("content"), str):
                    self.texts.setdefault(index, []).append(delta["content"])
            if choice.get("finish_reason"):
                self.finish[index] = str(choice["finish_reason"])

    async def end(self) -> list[JSON]:
        choices = [
            {
                "index": i,
                "message": {"role": "assistant", "content": "".join(self.texts.get(i, []))},
                "finish_reason": self.finish.get(i, "stop"),
            }
            for i in sorted(self.texts.keys() | self.finish.keys())
        ]
        answer: JSON = {
            **self.head,
            "object": "chat.completion",
            "model": self.ctx.trace.model,
            "choices": choices,
        }
        if self.usage is not None:
            answer["usage"] = self.usage
        await self.cache._store(self.ctx, answer)
        return []
