"""``POST /v1/messages`` end to end: the unmodified ``anthropic`` SDK against the gateway in
front of the real llama.cpp model (an OpenAI-compatible backend), routed by the config's
rules, with the ``x-polyroute-*`` headers."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fakes import Behaviour, FakeAnthropic, running
from procs import Gateway

pytestmark = pytest.mark.e2e
anthropic = pytest.importorskip("anthropic")


@pytest.fixture
def claude(gateway: Gateway) -> Iterator[Any]:
    client = anthropic.Anthropic(
        base_url=gateway.proc.url, api_key="e2e-no-key", max_retries=0, timeout=60
    )
    yield client
    client.close()


def test_a_message_is_routed_and_answered(claude: Any) -> None:
    raw = claude.messages.with_raw_response.create(
        model="auto",
        max_tokens=16,
        system="You are terse.",
        messages=[{"role": "user", "content": "Prove that the derivative of x squared is 2x."}],
    )
    message = raw.parse()
    assert raw.headers["x-polyroute-decision"] == "hard-math"
    assert raw.headers["x-polyroute-model"] == "large"
    assert message.type == "message" and message.role == "assistant"
    assert message.content[0].type == "text" and message.content[0].text
    assert message.stop_reason in ("end_turn", "max_tokens")
    assert message.usage.output_tokens > 0


def test_a_streamed_message_arrives_as_anthropic_events(claude: Any) -> None:
    with claude.messages.stream(
        model="auto",
        max_tokens=16,
        messages=[{"role": "user", "content": "Hi there! How are you today?"}],
    ) as stream:
        pieces = list(stream.text_stream)
        final = stream.get_final_message()
    assert "".join(pieces) == final.content[0].text and pieces
    assert final.stop_reason in ("end_turn", "max_tokens")


def test_errors_come_in_anthropic_shape(claude: Any) -> None:
    with pytest.raises(anthropic.NotFoundError) as info:
        claude.messages.create(
            model="no-such-model", max_tokens=8, messages=[{"role": "user", "content": "hi"}]
        )
    assert info.value.body["type"] == "error"
    assert info.value.body["error"]["type"] == "not_found_error"
    with pytest.raises(anthropic.BadRequestError):
        claude.messages.create(
            model="auto", max_tokens=8, messages=[{"role": "robot", "content": "hi"}]
        )
    counted = claude.messages.count_tokens(
        model="auto", messages=[{"role": "user", "content": "How many tokens is this?"}]
    )
    assert counted.input_tokens > 0


def test_langchain_chat_anthropic_pointed_at_polyroute(gateway: Gateway) -> None:
    """LangChain's ``ChatAnthropic`` (its own Anthropic SDK use) against ``/v1/messages``."""
    langchain_anthropic = pytest.importorskip("langchain_anthropic")
    chat = langchain_anthropic.ChatAnthropic(
        model="auto",
        base_url=gateway.proc.url,
        api_key="e2e-no-key",
        max_tokens=16,
        max_retries=0,
        timeout=60,
    )
    reply = chat.invoke("Prove that the derivative of x squared is 2x.")
    assert isinstance(reply.content, str) and reply.content
    assert reply.response_metadata["model"] == "large"  # routed by the config's keyword rule
    pieces = [chunk.content for chunk in chat.stream("Hi there! How are you today?")]
    assert "".join(p for p in pieces if isinstance(p, str))


@pytest.fixture(scope="module")
def native_gateway(gateway_factory: Any, llama_small: Any) -> Iterator[tuple[Gateway, Any]]:
    """A gateway process whose first candidate speaks Anthropic (a recording fake on
    loopback) and whose second is the real llama.cpp model (OpenAI-compatible)."""
    with running(FakeAnthropic("claude", thinking=True)) as (fake,):
        config = {
            "models": {
                "claude": {
                    "provider": "anthropic",
                    "base_url": f"http://127.0.0.1:{fake.port}",
                    "model": "claude-x",
                    "timeout_s": 10,
                },
                "llama": {"base_url": f"{llama_small.url}/v1", "timeout_s": 30},
            },
            "decisions": [
                {"name": "claude-first", "models": ["claude", "llama"], "select": "static"}
            ],
            "server": {"retries": 0},
        }
        yield gateway_factory("gateway-native", config), fake


def test_messages_pass_through_natively_to_an_anthropic_backend(
    native_gateway: tuple[Gateway, Any],
) -> None:
    """The SDK's thinking request reaches the Anthropic backend untouched, and its
    thinking block comes back, plain and streamed; when that backend fails, the real
    llama.cpp model answers through the translation."""
    gateway, fake = native_gateway
    claude = anthropic.Anthropic(
        base_url=gateway.proc.url, api_key="e2e-no-key", max_retries=0, timeout=60
    )
    thinking = {"type": "enabled", "budget_tokens": 1024}
    messages = [{"role": "user", "content": "Say hi."}]
    with claude:
        raw = claude.messages.with_raw_response.create(
            model="auto", max_tokens=64, messages=messages, thinking=thinking
        )
        msg = raw.parse()
        assert raw.headers["x-polyroute-model"] == "claude" and msg.model == "claude"
        assert [b.type for b in msg.content] == ["thinking", "text"]
        sent = fake.requests[-1]
        assert sent["thinking"] == thinking and sent["model"] == "claude-x"
        with claude.messages.stream(
            model="auto", max_tokens=64, messages=messages, thinking=thinking
        ) as stream:
            final = stream.get_final_message()
        assert final.content[0].type == "thinking" and final.content[1].text.strip()
        fake.behaviour = Behaviour(mode="status", status=503)
        raw = claude.messages.with_raw_response.create(
            model="auto", max_tokens=8, messages=messages, thinking=thinking
        )
        assert raw.headers["x-polyroute-model"] == "llama"
        assert [b.type for b in raw.parse().content] == ["text"]
