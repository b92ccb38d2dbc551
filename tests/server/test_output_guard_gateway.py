"""``output_guard`` through the gateway and the ``openai`` client: a withheld answer is
an OpenAI-style 403, a tripped stream raises in the client (it never looks complete)."""

from __future__ import annotations

from collections.abc import Iterator

import openai
import pytest
from fakes import Behaviour, FakeUpstream, gateway_config
from starlette.testclient import TestClient

from polyroute import Engine, parse_config
from polyroute.server import create_app

PROMPT = "Say hi to jane.doe@example.com"


@pytest.fixture
def client(upstreams: tuple[FakeUpstream, ...]) -> Iterator[openai.OpenAI]:
    upstreams[0].behaviour = Behaviour(mode="echo", chunks=4)
    config = gateway_config(upstreams[0].base_url, upstreams[1].base_url)
    config["signals"] = {**config["signals"], "pii": {"type": "pii"}}
    config["plugins"] = [{"type": "output_guard", "signal": "pii"}]
    with TestClient(create_app(Engine(parse_config(config)))) as http:
        yield openai.OpenAI(base_url="http://testserver/v1", api_key="k", http_client=http)


def test_a_withheld_answer_is_a_403_and_a_tripped_stream_raises(client: openai.OpenAI) -> None:
    messages: list[openai.types.chat.ChatCompletionMessageParam] = [
        {"role": "user", "content": PROMPT}
    ]
    with pytest.raises(openai.PermissionDeniedError) as info:
        client.chat.completions.create(model="auto", messages=messages)
    assert "withheld" in str(info.value)
    stream = client.chat.completions.create(model="auto", messages=messages, stream=True)
    with pytest.raises(openai.APIError):
        for _ in stream:
            pass
    clean = client.chat.completions.create(
        model="auto", messages=[{"role": "user", "content": "say hi"}]
    )
    assert clean.choices[0].message.content == "say hi"
