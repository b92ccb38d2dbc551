"""``POST /v1/messages`` to an Anthropic backend is passed through natively: the client's
own body reaches the upstream untouched (only ``model`` and ``stream`` set) and the
upstream's own answer or events reach the client (only ``model`` renamed), so what chat
cannot express (thinking, ``cache_control``, ``top_k``, fields Anthropic adds later)
survives.  Another backend, or a plugin that edits the request or the answer, gets the
translation."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from anthropic_helpers import sdk
from fakes import Behaviour, FakeAnthropic, FakeUpstream, app_clients, running
from starlette.testclient import TestClient

from polyroute import Engine, parse_config

Ups = tuple[FakeAnthropic, FakeUpstream]

BODY: dict[str, Any] = {
    "model": "auto",
    "max_tokens": 64,
    "system": [{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}],
    "messages": [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Hi there", "cache_control": {"type": "ephemeral"}}
            ],
        }
    ],
    "thinking": {"type": "enabled", "budget_tokens": 1024},
    "top_k": 5,
    "service_tier": "auto",
    "some_future_field": {"nested": [1, 2, 3]},
}


@pytest.fixture
def ups() -> Iterator[Ups]:
    with running(FakeAnthropic("claude", thinking=True), FakeUpstream("local")) as found:
        yield found  # type: ignore[misc]


@pytest.fixture
def gateway(ups: Ups) -> Iterator[Callable[..., TestClient]]:
    claude, local = ups

    def config(**extra: Any) -> dict[str, Any]:
        return {
            "models": {
                "claude": {
                    "provider": "anthropic",
                    "base_url": f"http://127.0.0.1:{claude.port}",
                    "model": "claude-x",
                    "api_key": "sk-ant-secret",
                },
                "local": {"base_url": local.base_url},
            },
            "decisions": [{"name": "claude-first", "models": ["claude", "local"]}],
            "server": {"retries": 0},
            **extra,
        }

    with app_clients() as open_client:
        yield lambda **extra: open_client(Engine(parse_config(config(**extra))))


def events(text: str) -> list[dict[str, Any]]:
    return [json.loads(line[5:]) for line in text.splitlines() if line.startswith("data:")]


def test_the_client_body_reaches_an_anthropic_upstream_untouched(
    gateway: Callable[..., TestClient], ups: Ups
) -> None:
    claude, _ = ups
    r = gateway().post("/v1/messages", json=BODY)
    assert r.status_code == 200, r.text
    assert claude.requests == [{**BODY, "model": "claude-x", "stream": False}]
    answer = r.json()
    assert answer["model"] == "claude" and r.headers["x-polyroute-model"] == "claude"
    assert [b["type"] for b in answer["content"]] == ["thinking", "text"]
    assert answer["content"][0]["signature"] == "sig-1"
    assert answer["usage"] == {"input_tokens": 5, "output_tokens": 4}


def test_a_native_stream_relays_the_upstream_events(
    gateway: Callable[..., TestClient], ups: Ups
) -> None:
    claude, _ = ups
    r = gateway().post("/v1/messages", json={**BODY, "stream": True})
    assert r.status_code == 200, r.text
    assert claude.requests == [{**BODY, "model": "claude-x", "stream": True}]
    got = events(r.text)
    kinds = [e["type"] for e in got]
    assert kinds[0] == "message_start" and kinds[-2:] == ["message_delta", "message_stop"]
    assert got[0]["message"]["model"] == "claude"
    deltas = [e["delta"]["type"] for e in got if e["type"] == "content_block_delta"]
    assert deltas[:2] == ["thinking_delta", "signature_delta"]
    text = "".join(e["delta"].get("text", "") for e in got if e["type"] == "content_block_delta")
    assert text.strip() == "hello from fake (claude)"
    assert kinds.count("content_block_stop") == 2


def test_the_anthropic_sdk_reads_a_native_answer_and_stream(
    gateway: Callable[..., TestClient],
) -> None:
    anthropic = pytest.importorskip("anthropic")
    claude = sdk(gateway())
    extra = {"thinking": BODY["thinking"], "extra_body": {"top_k": 5}}
    msg = claude.messages.create(
        model="auto", max_tokens=64, messages=[{"role": "user", "content": "Hi"}], **extra
    )
    assert isinstance(msg.content[0], anthropic.types.ThinkingBlock)
    assert msg.content[1].text == "hello from fake (claude)"
    with claude.messages.stream(
        model="auto", max_tokens=64, messages=[{"role": "user", "content": "Hi"}], **extra
    ) as stream:
        final = stream.get_final_message()
    assert final.content[0].type == "thinking" and final.content[0].thinking == "Let me think."
    assert final.content[1].text.strip() == "hello from fake (claude)"


@pytest.mark.parametrize("stream", [False, True])
def test_failover_to_an_openai_backend_translates(
    gateway: Callable[..., TestClient], ups: Ups, stream: bool
) -> None:
    claude, local = ups
    claude.behaviour = Behaviour(mode="status", status=503)
    r = gateway().post("/v1/messages", json={**BODY, "stream": stream})
    assert r.status_code == 200, r.text
    assert r.headers["x-polyroute-model"] == "local"
    sent = local.requests[0]
    assert "messages" in sent and "thinking" not in sent and "some_future_field" not in sent
    if stream:
        got = events(r.text)
        assert got[0]["type"] == "message_start" and got[-1]["type"] == "message_stop"
        text = "".join(e["delta"].get("text", "") for e in got if "delta" in e)
        assert text.startswith("tok0") and "thinking" not in r.text
    else:
        assert r.json()["content"] == [{"type": "text", "text": "hello from fake (local)"}]


@pytest.mark.parametrize("stream", [False, True])
def test_a_plugin_that_edits_the_request_gets_the_translation(
    gateway: Callable[..., TestClient], ups: Ups, stream: bool
) -> None:
    claude, _ = ups
    plugins = [{"type": "system_prompt", "text": "Answer in French.", "mode": "replace"}]
    r = gateway(plugins=plugins).post("/v1/messages", json={**BODY, "stream": stream})
    assert r.status_code == 200, r.text
    sent = claude.requests[0]
    assert sent["system"] == "Answer in French."  # the plugin's edit reached the upstream
    assert "some_future_field" not in sent
    kinds = [e["type"] for e in events(r.text)] if stream else []
    if stream:
        assert "thinking_delta" not in r.text and kinds[-1] == "message_stop"
    else:
        assert [b["type"] for b in r.json()["content"]] == ["text"]
