"""``POST /v1/embeddings``: the openai SDK's ``embeddings.create`` through the gateway app
to the named embedding model; ``auto`` and chat models are clear 400s."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import openai
import pytest
from fakes import FakeUpstream, gateway_config
from starlette.testclient import TestClient

from polyroute import Engine, parse_config
from polyroute.errors import ConfigError
from polyroute.server import create_app


@pytest.fixture
def client(upstreams: tuple[FakeUpstream, ...]) -> Iterator[openai.OpenAI]:
    config = gateway_config(upstreams[0].base_url, upstreams[1].base_url)
    config["models"]["embed"] = {
        "kind": "embedding",
        "base_url": upstreams[1].base_url,
        "model": "text-embed-upstream",
        "input_price_per_mtok": 0.02,
    }
    with TestClient(create_app(Engine(parse_config(config)))) as http:
        yield openai.OpenAI(base_url="http://testserver/v1", api_key="k", http_client=http)


def test_embeddings_reach_the_named_model(
    client: openai.OpenAI, upstreams: tuple[FakeUpstream, ...], caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="polyroute.access"):
        raw = client.embeddings.with_raw_response.create(model="embed", input=["a", "bcd"])
    result = raw.parse()
    assert [d.embedding for d in result.data] == [[0.5, 1.0], [0.5, 3.0]]
    assert result.model == "embed" and raw.headers["x-polyroute-model"] == "embed"
    sent = upstreams[1].requests[-1]  # every field passed on (the SDK asks for base64)
    assert sent == {
        "model": "text-embed-upstream",
        "input": ["a", "bcd"],
        "encoding_format": "base64",
    }
    line = caplog.records[-1].getMessage()
    assert '"endpoint":"embeddings"' in line and '"cost_source":"usage"' in line
    assert '"input_tokens":4' in line


@pytest.mark.parametrize(
    ("model", "error", "message"),
    [
        ("auto", openai.BadRequestError, "embeddings are not routed"),
        ("small", openai.BadRequestError, "is a chat model"),
        ("nope", openai.NotFoundError, "does not exist"),
    ],
)
def test_auto_and_chat_models_are_clear_errors(
    client: openai.OpenAI, model: str, error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        client.embeddings.create(model=model, input="hi")


def test_bad_input_names_the_field(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.embeddings.create(model="embed", input=[])
    body: Any = info.value.body
    assert body["param"] == "input"


def test_a_decision_may_not_route_to_an_embedding_model(
    upstreams: tuple[FakeUpstream, ...],
) -> None:
    config = gateway_config(upstreams[0].base_url, upstreams[1].base_url)
    config["models"]["embed"] = {"kind": "embedding", "base_url": upstreams[1].base_url}
    config["decisions"] = [{"name": "d", "models": ["embed"]}]
    with pytest.raises(ConfigError, match=r"decisions\[0\]\.models: 'embed' is an embedding"):
        Engine(parse_config(config))
