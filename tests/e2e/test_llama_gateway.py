"""The gateway in front of two real llama.cpp servers, driven by the unmodified openai client."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from typing import TYPE_CHECKING

import httpx
import pytest
from openai import NotFoundError, OpenAI, Stream
from openai.types.chat import ChatCompletionMessageParam

if TYPE_CHECKING:
    from tests.e2e.conftest import Gateway

pytestmark = pytest.mark.e2e

MATH_PROMPT = "Prove that the derivative of x squared is 2x."
CHAT_PROMPT = "Hi there! How are you today?"
HEADERS = (
    "x-polyroute-model",
    "x-polyroute-decision",
    "x-polyroute-trace-id",
    "x-polyroute-overhead-ms",
)


def _chat(prompt: str) -> list[ChatCompletionMessageParam]:
    return [{"role": "user", "content": prompt}]


def test_plain_chat_is_answered(client: OpenAI) -> None:
    completion = client.chat.completions.create(
        model="auto", messages=_chat(CHAT_PROMPT), max_tokens=16, temperature=0
    )
    choice = completion.choices[0]
    assert choice.message.role == "assistant"
    assert choice.message.content
    assert choice.finish_reason in {"stop", "length"}
    assert completion.model in {"small", "large"}


def test_explanation_headers_are_present(client: OpenAI) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model="auto", messages=_chat(CHAT_PROMPT), max_tokens=8, temperature=0
    )
    for name in HEADERS:
        assert raw.headers.get(name), f"missing header {name}: {dict(raw.headers)}"
    assert float(raw.headers["x-polyroute-overhead-ms"]) >= 0.0
    completion = raw.parse()
    assert completion.model == raw.headers["x-polyroute-model"]


@pytest.mark.parametrize(
    ("prompt", "model", "decision"),
    [(MATH_PROMPT, "large", "hard-math"), (CHAT_PROMPT, "small", "default")],
)
def test_keyword_rule_routes_to_expected_model(
    client: OpenAI, prompt: str, model: str, decision: str
) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model="auto", messages=_chat(prompt), max_tokens=8, temperature=0
    )
    assert raw.headers["x-polyroute-model"] == model
    assert raw.headers["x-polyroute-decision"] == decision
    assert raw.parse().model == model


def test_naming_a_model_skips_routing(client: OpenAI) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model="large", messages=_chat(CHAT_PROMPT), max_tokens=8, temperature=0
    )
    assert raw.headers["x-polyroute-model"] == "large"
    assert raw.parse().model == "large"


def test_streaming_chat_arrives_in_chunks_and_ends(client: OpenAI) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model="auto",
        messages=_chat(MATH_PROMPT),
        max_tokens=16,
        temperature=0,
        stream=True,
    )
    assert raw.headers["x-polyroute-model"] == "large"
    assert raw.headers["x-polyroute-decision"] == "hard-math"
    pieces: list[str] = []
    finish_reasons: list[str] = []
    chunks = 0
    stream = raw.parse()
    assert isinstance(stream, Stream)
    with stream:
        for chunk in stream:
            chunks += 1
            assert chunk.object == "chat.completion.chunk"
            for choice in chunk.choices:
                if choice.delta.content:
                    pieces.append(choice.delta.content)
                if choice.finish_reason:
                    finish_reasons.append(choice.finish_reason)
    assert chunks > 1, "expected several SSE chunks"
    assert "".join(pieces).strip(), "streamed content is empty"
    assert finish_reasons and finish_reasons[-1] in {"stop", "length"}


def test_raw_sse_stream_ends_with_done(gateway: Gateway) -> None:
    body = {"model": "auto", "messages": _chat(CHAT_PROMPT), "max_tokens": 8, "stream": True}
    with (
        httpx.Client(timeout=60.0, trust_env=False) as http,
        http.stream("POST", f"{gateway.base_url}/chat/completions", json=body) as resp,
    ):
        assert resp.status_code == 200
        assert resp.headers["content-type"].startswith("text/event-stream")
        assert resp.headers["x-polyroute-model"] == "small"
        events = [line for line in resp.iter_lines() if line.strip()]
    assert all(line.startswith("data: ") for line in events), events
    assert events[-1] == "data: [DONE]"
    payloads = [json.loads(line[6:]) for line in events[:-1]]
    assert all("error" not in p for p in payloads)
    finishes = [c.get("finish_reason") for p in payloads for c in p.get("choices", [])]
    assert [f for f in finishes if f][-1:] in (["stop"], ["length"]), finishes


def test_text_completion(client: OpenAI) -> None:
    raw = client.completions.with_raw_response.create(
        model="auto", prompt="The capital of France is", max_tokens=8, temperature=0
    )
    assert raw.headers["x-polyroute-model"] == "small"
    completion = raw.parse()
    assert completion.model == "small"
    assert completion.choices[0].text.strip()


def test_models_lists_auto_and_configured_models(client: OpenAI) -> None:
    ids = {model.id for model in client.models.list()}
    assert {"auto", "small", "large"} <= ids


def test_route_endpoint_explains_without_calling_a_model(gateway: Gateway) -> None:
    body = json.dumps({"model": "auto", "messages": _chat(MATH_PROMPT)}).encode()
    request = urllib.request.Request(
        f"{gateway.base_url}/route",
        data=body,
        headers={"content-type": "application/json"},
        method="POST",
    )
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(request, timeout=10) as resp:
        assert resp.status == 200
        trace = json.loads(resp.read())
    text = json.dumps(trace)
    assert "hard-math" in text
    assert "large" in text


def test_route_cli_explains_a_prompt(gateway: Gateway) -> None:
    code = "import sys; from polyroute.cli import main; sys.exit(main())"
    done = subprocess.run(
        [sys.executable, "-c", code, "route", "--config", str(gateway.config_path), MATH_PROMPT],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 0, done.stderr
    assert "hard-math" in done.stdout
    assert "large" in done.stdout


def test_unknown_model_is_an_openai_style_404(client: OpenAI) -> None:
    with pytest.raises(NotFoundError) as info:
        client.chat.completions.create(
            model="no-such-model", messages=_chat(CHAT_PROMPT), max_tokens=4
        )
    assert info.value.status_code == 404


def test_gateway_listens_on_loopback_only(gateway: Gateway) -> None:
    assert gateway.proc.url.startswith("http://127.0.0.1:")
