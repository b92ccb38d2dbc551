from __future__ import annotations

from typing import Any

from fakes import Behaviour, FakeUpstream


def chat(prompt: str, **extra: Any) -> dict[str, Any]:
    return {"model": "auto", "messages": [{"role": "user", "content": prompt}], **extra}


def test_routes_by_keyword_and_explains(
    make_client: Any, upstreams: tuple[FakeUpstream, ...]
) -> None:
    client = make_client()
    large = upstreams[1]
    r = client.post("/v1/chat/completions", json=chat("please prove this theorem"))
    assert r.status_code == 200
    assert r.headers["x-polyroute-model"] == "large"
    assert r.headers["x-polyroute-decision"] == "hard-math"
    assert len(r.headers["x-polyroute-trace-id"]) == 16
    assert float(r.headers["x-polyroute-overhead-ms"]) >= 0
    assert r.json()["model"] == "large"
    assert large.requests[-1]["model"] == "my-large-model"
    assert large.headers[-1]["Authorization"] == "Bearer sk-secret-large-key"
    r = client.post("/v1/chat/completions", json=chat("hello there"))
    assert r.headers["x-polyroute-model"] == "small"
    assert r.json()["choices"][0]["message"]["content"].endswith("(small)")


def test_fields_pass_through_untouched(
    make_client: Any, upstreams: tuple[FakeUpstream, ...]
) -> None:
    client = make_client()
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]
    body = chat(
        "hi", tools=tools, response_format={"type": "json_object"}, temperature=0.2, foo=[1]
    )
    assert client.post("/v1/chat/completions", json=body).status_code == 200
    sent = upstreams[0].requests[-1]
    assert sent["tools"] == tools and sent["response_format"] == {"type": "json_object"}
    assert sent["temperature"] == 0.2 and sent["foo"] == [1]


def test_direct_model_skips_routing(make_client: Any) -> None:
    r = make_client().post("/v1/chat/completions", json={**chat("prove it"), "model": "small"})
    assert r.headers["x-polyroute-model"] == "small"
    assert r.headers["x-polyroute-decision"] == "direct:small"


def test_unknown_model_is_openai_404(make_client: Any) -> None:
    r = make_client().post("/v1/chat/completions", json={**chat("x"), "model": "gpt-9"})
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "model_not_found"


def test_models_lists_auto_and_configured(make_client: Any) -> None:
    ids = [m["id"] for m in make_client().get("/v1/models").json()["data"]]
    assert ids == ["auto", "small", "large"]


def test_streaming_relays_chunks_and_done(make_client: Any) -> None:
    client = make_client()
    with client.stream("POST", "/v1/chat/completions", json=chat("hi", stream=True)) as r:
        assert r.status_code == 200
        assert r.headers["x-polyroute-model"] == "small"
        lines = [ln for ln in r.iter_lines() if ln]
    assert lines[-1] == "data: [DONE]"
    assert len(lines) == 4 and '"model":"small"' in lines[0]


def test_stream_cut_after_first_chunk_ends_with_error_event(
    make_client: Any, upstreams: tuple[FakeUpstream, ...]
) -> None:
    upstreams[0].behaviour = Behaviour(mode="cut_stream")
    client = make_client()
    with client.stream("POST", "/v1/chat/completions", json=chat("hi", stream=True)) as r:
        lines = [ln for ln in r.iter_lines() if ln]
    assert "data: [DONE]" not in lines
    assert '"stream_interrupted"' in lines[-1]


def test_completions_endpoint(make_client: Any) -> None:
    r = make_client().post("/v1/completions", json={"model": "auto", "prompt": "Once upon"})
    assert r.status_code == 200 and r.json()["choices"][0]["text"] == "hello from fake"


def test_route_dry_run_calls_no_model(
    make_client: Any, upstreams: tuple[FakeUpstream, ...]
) -> None:
    r = make_client().post("/v1/route", json={"prompt": "prove the integral converges"})
    assert r.status_code == 200
    trace = r.json()
    assert trace["decision"] == "hard-math" and trace["candidates"] == ["large", "small"]
    assert trace["signals"] == {"math": True}
    assert not upstreams[0].requests and not upstreams[1].requests


def test_health_and_ready(make_client: Any) -> None:
    client = make_client()
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["backends"] == {
        "small": "closed",
        "large": "closed",
    }


def test_streams_release_in_flight_counts(
    make_client: Any, upstreams: tuple[FakeUpstream, ...]
) -> None:
    client = make_client()
    small = client.app.state.engine.backends["small"]
    with client.stream("POST", "/v1/chat/completions", json=chat("hi", stream=True)) as r:
        list(r.iter_lines())
    upstreams[0].behaviour = Behaviour(mode="cut_stream")
    with client.stream("POST", "/v1/chat/completions", json=chat("hi", stream=True)) as r:
        list(r.iter_lines())
    with client.stream("POST", "/v1/chat/completions", json=chat("hi", stream=True)) as r:
        pass  # the client leaves without reading the body
    assert small.stats.in_flight == 0
