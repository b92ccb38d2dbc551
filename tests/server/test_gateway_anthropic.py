"""The gateway in front of an Anthropic-protocol upstream, driven as OpenAI."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from fakes import Behaviour, FakeAnthropic, FakeUpstream, running
from starlette.testclient import TestClient

from polyroute import Engine, parse_config
from polyroute.server import create_app


@pytest.fixture
def pair() -> Iterator[tuple[TestClient, FakeAnthropic, FakeUpstream]]:
    with running(FakeAnthropic("claude"), FakeUpstream("local")) as (claude, local):
        config = {
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
        }
        with TestClient(create_app(Engine(parse_config(config)))) as client:
            yield client, claude, local  # type: ignore[misc]


def body(stream: bool = False) -> dict[str, object]:
    return {
        "model": "auto",
        "stream": stream,
        "messages": [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": "hello"},
        ],
    }


def test_plain_chat_is_translated_both_ways(
    pair: tuple[TestClient, FakeAnthropic, FakeUpstream],
) -> None:
    client, claude, _ = pair
    r = client.post("/v1/chat/completions", json=body())
    assert r.status_code == 200 and r.headers["x-polyroute-model"] == "claude"
    answer = r.json()
    assert answer["object"] == "chat.completion" and answer["model"] == "claude"
    assert answer["choices"][0]["message"]["content"] == "hello from fake (claude)"
    assert answer["choices"][0]["finish_reason"] == "stop"
    sent = claude.requests[-1]
    assert sent["model"] == "claude-x" and sent["system"] == "be brief"
    assert claude.headers[-1]["x-api-key"] == "sk-ant-secret"


def test_streaming_is_translated_to_openai_chunks(
    pair: tuple[TestClient, FakeAnthropic, FakeUpstream],
) -> None:
    client, _, _ = pair
    with client.stream("POST", "/v1/chat/completions", json=body(stream=True)) as r:
        lines = [ln for ln in r.iter_lines() if ln.startswith("data: ")]
    assert lines[-1] == "data: [DONE]"
    assert '"chat.completion.chunk"' in lines[0]
    text = "".join(
        c["choices"][0]["delta"].get("content") or ""
        for c in (json.loads(ln[6:]) for ln in lines[:-1])
        if c.get("choices")
    )
    assert text.strip() == "hello from fake (claude)"


def test_overloaded_anthropic_fails_over_to_openai_backend(
    pair: tuple[TestClient, FakeAnthropic, FakeUpstream],
) -> None:
    client, claude, local = pair
    claude.behaviour = Behaviour(mode="status", status=529)
    r = client.post("/v1/chat/completions", json=body())
    assert r.status_code == 200 and r.headers["x-polyroute-model"] == "local"
    assert len(local.requests) == 1
