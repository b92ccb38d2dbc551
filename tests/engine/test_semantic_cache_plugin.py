"""The ``semantic_cache`` plugin in the pipeline: hits cost no upstream call and no
selection, replay as streams, never cross tenants or change what was asked."""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections.abc import Sequence
from typing import Any

import pytest
from fakes import Behaviour, FakeUpstream, gateway_config

import polyroute.plugins.semantic_cache as semantic_cache
from polyroute import Engine, Request, batching, parse_config
from polyroute.cache.families import default_families_dir
from polyroute.embed import Array, Encoder
from polyroute.errors import ConfigError
from polyroute.types import Trace

ASK = "How do I reset my password?"
REWORDED = "how can i reset my password"
OTHER = "What is the capital of France?"


def engine_for(upstreams: tuple[FakeUpstream, ...], **options: Any) -> Engine:
    config = gateway_config(upstreams[0].base_url, upstreams[1].base_url)
    config["plugins"] = [{"type": "semantic_cache", **options}]
    return Engine(parse_config(config))


def chat(prompt: str, **fields: Any) -> Request:
    return Request.chat(prompt, **{"temperature": 0, **fields})


class CountingEncoder:
    """The real serving encoder, recording every text it is asked to embed."""

    def __init__(self, inner: Encoder) -> None:
        self.inner = inner
        self.id = inner.id
        self.texts: list[str] = []

    def fit(self, texts: Sequence[str]) -> Encoder:
        return self

    def encode(self, texts: Sequence[str]) -> Array:
        self.texts.extend(texts)
        return self.inner.encode(texts)

    def state(self) -> dict[str, Any]:
        return self.inner.state()


@pytest.fixture
def counting(monkeypatch: pytest.MonkeyPatch) -> list[CountingEncoder]:
    """The encoders the semantic_cache plugins of the test make (one per engine)."""
    made: list[CountingEncoder] = []
    real = semantic_cache.serving_encoder

    def serving_encoder(encoder_id: str) -> Encoder:
        made.append(CountingEncoder(real(encoder_id)))
        return made[-1]

    monkeypatch.setattr(semantic_cache, "serving_encoder", serving_encoder)
    return made


async def test_an_exact_repeat_is_answered_without_the_encoder(
    upstreams: tuple[FakeUpstream, ...], counting: list[CountingEncoder]
) -> None:
    """A word-for-word repeat (surrounding spaces aside) never reaches the encoder; a
    rewording does, and is reported as a semantic match."""
    upstreams[0].behaviour = Behaviour(mode="echo")
    engine = engine_for(upstreams)
    try:
        _, first = await engine.complete(chat(ASK))
        (encoder,) = counting
        seen = list(encoder.texts)
        _, again = await engine.complete(chat(ASK))
        _, padded = await engine.complete(chat(f"  {ASK}\n"))
        after_repeats = list(encoder.texts)
        _, reworded = await engine.complete(chat(REWORDED))
    finally:
        await engine.aclose()
    assert ASK in seen and first.cache == "miss"
    assert after_repeats == seen  # no embedding for the repeats
    assert encoder.texts == [*seen, REWORDED]
    assert (again.cache, padded.cache, reworded.cache) == ("hit", "hit", "hit")
    for trace in (again, padded):
        assert trace.events[-1]["match"] == "exact" and trace.events[-1]["similarity"] == 1.0
    assert reworded.events[-1]["match"] == "semantic"
    assert len(upstreams[0].requests) == 1


async def test_a_miss_in_an_empty_scope_embeds_while_the_upstream_answers(
    upstreams: tuple[FakeUpstream, ...], counting: list[CountingEncoder]
) -> None:
    """Nothing to match in a new scope (a conversation's later turn: its earlier turns
    are in the scope): the upstream call goes on while the prompt is embedded (the
    encoder waits here until the upstream has the request), and the answer is still
    stored with its vector (a rewording then hits by meaning)."""
    upstreams[0].behaviour = Behaviour(mode="echo", delay_s=0.2)
    engine = engine_for(upstreams)
    engine.warmup()
    (encoder,) = counting
    upstream_first: list[bool] = []
    inner = encoder.encode
    before = [0]  # the upstream's request count before the request under test was sent

    def encode(texts: Sequence[str]) -> Array:
        if ASK in texts:  # the request's own embedding: does the upstream call go on?
            deadline = time.monotonic() + 5.0
            while len(upstreams[0].requests) == before[0] and time.monotonic() < deadline:
                time.sleep(0.01)  # a worker thread: the event loop carries on meanwhile
            upstream_first.append(len(upstreams[0].requests) > before[0])
        return inner(texts)

    encoder.encode = encode  # type: ignore[method-assign]
    try:
        _, first = await engine.complete(chat(ASK))
        _, reworded = await engine.complete(chat(REWORDED))
        history = [{"role": "user", "content": OTHER}, {"role": "assistant", "content": "Paris."}]
        turn = Request.chat(ASK, temperature=0)
        turn.body["messages"] = [*history, *turn.body["messages"]]
        before[0] = len(upstreams[0].requests)
        _, later_turn = await engine.complete(turn)
    finally:
        await engine.aclose()
    assert {"plugin": "semantic_cache", "action": "miss", "scope": "empty"} in first.events
    assert upstream_first == [True, True]
    assert reworded.cache == "hit" and reworded.events[-1]["match"] == "semantic"
    assert later_turn.cache == "miss"  # another scope: the earlier turns differ
    assert any(e.get("scope") == "empty" for e in later_turn.events)
    assert len(upstreams[0].requests) == 2


async def test_background_embeddings_are_capped_and_the_store_embeds_past_the_cap(
    upstreams: tuple[FakeUpstream, ...],
    counting: list[CountingEncoder],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Past ``MAX_BACKGROUND`` embeddings running ahead, an empty-scope miss starts none:
    a request that then fails (both upstreams down) costs no embedding at all, and an
    answered one is embedded for the store (a rewording of it still hits by meaning)."""
    from polyroute.errors import UpstreamError

    monkeypatch.setattr(semantic_cache, "MAX_BACKGROUND", 0)
    for up in upstreams:
        up.behaviour = Behaviour(mode="status", status=503)
    engine = engine_for(upstreams)
    engine.warmup()
    (encoder,) = counting
    try:
        with pytest.raises(UpstreamError):
            await engine.complete(chat(OTHER))
        await asyncio.sleep(0.2)  # time for a background embedding, were one started
        assert OTHER not in encoder.texts  # nothing embedded for a request never answered
        for up in upstreams:
            up.behaviour = Behaviour(mode="echo")
        _, first = await engine.complete(chat(ASK))
        _, reworded = await engine.complete(chat(REWORDED))
    finally:
        await engine.aclose()
    assert {"plugin": "semantic_cache", "action": "miss", "scope": "empty"} in first.events
    assert ASK in encoder.texts
    assert reworded.cache == "hit" and reworded.events[-1]["match"] == "semantic"


async def test_a_failing_probe_is_a_miss(
    upstreams: tuple[FakeUpstream, ...], monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = engine_for(upstreams)
    plugin = engine.plugins[0]
    assert isinstance(plugin, semantic_cache.SemanticCache)

    async def broken(scope: str, text: str) -> None:
        raise ConnectionError("redis is down")

    try:
        await engine.complete(chat(ASK))
        monkeypatch.setattr(plugin.index, "probe", broken)
        answer, trace = await engine.complete(chat(ASK))
    finally:
        await engine.aclose()
    assert trace.cache == "miss" and answer["choices"]
    assert len(upstreams[0].requests) == 2


async def test_a_repeat_and_a_rewording_are_answered_from_the_cache(
    upstreams: tuple[FakeUpstream, ...],
) -> None:
    upstreams[0].behaviour = Behaviour(mode="echo")
    engine = engine_for(upstreams)
    try:
        first, t1 = await engine.complete(chat(ASK))
        again, t2 = await engine.complete(chat(ASK))
        reworded, t3 = await engine.complete(chat(REWORDED))
        other, t4 = await engine.complete(chat(OTHER))
    finally:
        await engine.aclose()
    assert (t1.cache, t2.cache, t3.cache, t4.cache) == ("miss", "hit", "hit", "miss")
    assert again["choices"] == first["choices"] == reworded["choices"]
    assert other["choices"][0]["message"]["content"] == OTHER
    assert len(upstreams[0].requests) == 2  # the first question and the other one
    assert t2.outcome == "cache_hit" and t2.model == "small" and not t2.candidates
    assert (t1.cost_source, t2.cost_source, t2.cost_usd) == ("estimate", "cache", 0.0)
    assert t2.events[-1]["action"] == "hit" and t2.events[-1]["similarity"] > 0.99


async def test_a_hit_replays_as_a_stream_and_a_streamed_answer_is_stored(
    upstreams: tuple[FakeUpstream, ...],
) -> None:
    upstreams[0].behaviour = Behaviour(mode="echo", chunks=4)
    engine = engine_for(upstreams)
    try:
        start, t1 = await engine.stream(chat(ASK, stream=True))
        streamed = [start.first] + [c async for c in start.rest]
        answer, t2 = await engine.complete(chat(ASK))
        start, t3 = await engine.stream(chat(ASK, stream=True))
        replayed = [start.first] + [c async for c in start.rest]
    finally:
        await engine.aclose()
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in streamed)
    assert text == ASK and (t1.cache, t2.cache, t3.cache) == ("miss", "hit", "hit")
    assert answer["choices"][0]["message"]["content"] == ASK
    again = "".join(c["choices"][0]["delta"].get("content") or "" for c in replayed)
    assert again == ASK and replayed[-1]["choices"][0]["finish_reason"] == "stop"
    assert len(upstreams[0].requests) == 1


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"tenant": "b"}, "another tenant"),
        ({"system": "Answer in French."}, "another system prompt"),
        ({"max_tokens": 5}, "other sampling parameters"),
        ({"response_format": {"type": "json_object"}}, "another response format"),
    ],
)
async def test_a_hit_never_crosses_tenants_or_changes_what_was_asked(
    upstreams: tuple[FakeUpstream, ...], change: dict[str, Any], why: str
) -> None:
    engine = engine_for(upstreams)

    def request(tenant: str, system: str | None, **fields: Any) -> tuple[Request, Trace]:
        req = chat(ASK, **fields)
        if system is not None:
            req.body["messages"].insert(0, {"role": "system", "content": system})
        trace = Trace("t")
        trace.client = tenant
        return req, trace

    fields = {k: v for k, v in change.items() if k not in ("tenant", "system")}
    try:
        await engine.complete(*request("a", None))
        _, trace = await engine.complete(
            *request(change.get("tenant", "a"), change.get("system"), **fields)
        )
    finally:
        await engine.aclose()
    assert trace.cache == "miss", why
    assert len(upstreams[0].requests) == 2


async def test_sampled_requests_bypass_the_cache_unless_configured(
    upstreams: tuple[FakeUpstream, ...],
) -> None:
    engine = engine_for(upstreams)
    try:
        for _ in range(2):
            _, trace = await engine.complete(Request.chat(ASK))  # no temperature: samples
    finally:
        await engine.aclose()
    assert trace.cache == "" and trace.events[-1]["action"] == "skipped"
    engine = engine_for(upstreams, cache_sampled=True)
    try:
        for _ in range(2):
            _, trace = await engine.complete(Request.chat(ASK, temperature=0.7))
    finally:
        await engine.aclose()
    assert trace.cache == "hit" and len(upstreams[0].requests) == 3


def test_options_are_checked_at_load(upstreams: tuple[FakeUpstream, ...]) -> None:
    with pytest.raises(ConfigError, match=r"plugins\[0\]\.backend"):
        engine_for(upstreams, backend="memcached")
    with pytest.raises(ConfigError, match=r"plugins\[0\]: .*threshold <= accept"):
        engine_for(upstreams, threshold=0.9, accept=0.5)
    with pytest.raises(ConfigError, match=r"plugins\[0\]: similarity: .*nowhere"):
        engine_for(upstreams, similarity="/nowhere")
    with pytest.raises(ConfigError, match=r"plugins\[0\]: similarity: .*cannot serve"):
        engine_for(upstreams, encoder="static", similarity=str(default_families_dir()))


async def test_the_default_family_model_answers_rewordings_the_cosine_misses(
    upstreams: tuple[FakeUpstream, ...],
) -> None:
    """The shipped family model (CLINC150 intents) is the default; ``cosine`` turns it off."""
    upstreams[0].behaviour = Behaviour(mode="echo")
    caches = []
    for similarity in ("default", "cosine"):
        engine = engine_for(upstreams, similarity=similarity)
        try:
            _, first = await engine.complete(chat("create a new timer"))
            _, reworded = await engine.complete(chat("help me set a timer please"))
            _, other = await engine.complete(chat("set an alarm for me"))
        finally:
            await engine.aclose()
        caches.append((first.cache, reworded.cache, other.cache))
    assert caches == [("miss", "hit", "miss"), ("miss", "miss", "miss")]


def _redis_up() -> bool:
    try:
        socket.create_connection(("127.0.0.1", 6379), timeout=0.5).close()
    except OSError:
        return False
    return True


@pytest.mark.skipif(not _redis_up(), reason="no Redis on 127.0.0.1:6379")
async def test_replicas_share_the_redis_cache(upstreams: tuple[FakeUpstream, ...]) -> None:
    prefix = f"polyroute-test:{os.urandom(4).hex()}:"
    one = engine_for(upstreams, backend="redis", prefix=prefix)
    two = engine_for(upstreams, backend="redis", prefix=prefix)
    try:
        await one.complete(chat(ASK))
        answer, trace = await two.complete(chat(REWORDED))
        other = Trace("t")
        other.client = "someone-else"
        _, crossed = await two.complete(chat(ASK), other)
        _, repeat = await two.complete(chat(ASK))
    finally:
        await one.aclose()
        await two.aclose()
    assert trace.cache == "hit" and answer["model"] == "small"
    assert trace.events[-1]["match"] == "semantic"
    assert crossed.cache == "miss"
    assert repeat.cache == "hit" and repeat.events[-1]["match"] == "exact"
    assert len(upstreams[0].requests) == 2


async def test_concurrent_misses_share_the_engine_s_encoder_batches(
    upstreams: tuple[FakeUpstream, ...],
    counting: list[CountingEncoder],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The cache embeds through the engine's encoder queues (``PluginEnv.batchers``): with
    one worker, the misses that arrive while a batch runs go in the next call together,
    not a thread each."""
    monkeypatch.setattr(batching, "usable_cores", lambda: 1)
    engine = engine_for(upstreams)
    engine.warmup()
    (encoder,) = counting
    inner = encoder.encode
    calls: list[int] = []

    def encode(texts: Sequence[str]) -> Array:
        calls.append(len(texts))
        time.sleep(0.05)  # long enough for the other requests to queue behind this batch
        return inner(texts)

    monkeypatch.setattr(encoder, "encode", encode)
    prompts = [f"please tell me a fact about animal kind {i}" for i in "abcdefgh"]
    try:
        done = await asyncio.gather(*(engine.complete(chat(p)) for p in prompts))
    finally:
        await engine.aclose()
    assert [trace.cache for _, trace in done] == ["miss"] * len(prompts)
    assert sum(calls) == len(prompts) and max(calls) > 1 and len(calls) < len(prompts)
