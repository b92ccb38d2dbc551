"""Plans through a real gateway process in front of the real llama.cpp model, driven by the
``openai`` client: a cascade whose cheap stage's live logprobs decide, plain and streamed,
with each stage's measured confidence in the logged trace."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from tests.e2e.conftest import Gateway, GatewayFactory, Proc

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def plan_gateway(gateway_factory: GatewayFactory, llama_small: Proc, llama_large: Proc) -> Gateway:
    def cascade(gt: float) -> dict[str, Any]:
        accept = {"logprob_mean": {"gt": gt}}
        return {"cascade": {"stages": ["small", "large"], "accept": accept}}

    config: dict[str, Any] = {
        "models": {
            "small": _entry(llama_small, 0.1),
            "large": _entry(llama_large, 3.0),
            "third": _entry(llama_large, 1.0),
        },
        "signals": {
            "hard": {"type": "keyword", "any": ["prove"]},
            "vote": {"type": "keyword", "any": ["vote"]},
            "adapt": {"type": "keyword", "any": ["adapt"]},
            "merge": {"type": "keyword", "any": ["merge"]},
        },
        "decisions": [
            {"name": "vote", "priority": 20, "when": "vote", "models": ["small", "large"],
             "plan": {"ensemble": {"aggregate": "vote"}}},
            {"name": "merge", "priority": 20, "when": "merge",
             "models": ["small", "large", "third"],
             "plan": {"ensemble": {"aggregate": "merge", "merger": "third"}}},
            {"name": "adapt", "priority": 20, "when": "adapt",
             "models": ["small", "large", "third"],
             "plan": {"adaptive": {"probe": "small", "samples": 3}}},
            # a token logprob is never above 0: this cheap stage is always too unsure
            {"name": "strict", "priority": 10, "when": "hard", "models": ["small", "large"],
             "plan": cascade(0.0)},
            {"name": "lenient", "models": ["small", "large"], "plan": cascade(-50.0)},
        ],
    }  # fmt: skip
    return gateway_factory("gateway-plans", config)


def _entry(upstream: Proc, price: float) -> dict[str, Any]:
    return {
        "base_url": f"{upstream.url}/v1",
        "model": "smollm2",
        "timeout_s": 60,
        "input_price_per_mtok": price,
        "output_price_per_mtok": price,
    }


def _ask(
    gateway: Gateway, prompt: str, max_tokens: int, stream: bool = False, **extra: Any
) -> tuple[Any, str, Any]:
    """One user prompt sent as ``model="auto"``: the response headers, the answer's text
    (a stream read to its end) and the parsed completion (or stream)."""
    with gateway.client() as client:
        raw = client.chat.completions.with_raw_response.create(
            model="auto",
            messages=[{"role": "user", "content": prompt}],
            max_tokens=max_tokens,
            stream=stream,
            **extra,
        )
        parsed = raw.parse()
        return raw.headers, _text(parsed, stream), parsed


def _stages(gateway: Gateway, trace_id: str) -> list[dict[str, Any]]:
    trace = gateway.wait_trace(trace_id)
    return [e for e in trace["plugins"] if e.get("plan") == "cascade"]


@pytest.mark.parametrize("stream", [False, True])
def test_a_cascade_escalates_on_low_logprob(plan_gateway: Gateway, stream: bool) -> None:
    headers, text, _completion = _ask(
        plan_gateway, "Prove that 2 + 2 = 4.", 8, temperature=0, stream=stream
    )
    assert headers["x-polyroute-decision"] == "strict"
    assert headers["x-polyroute-model"] == "large"
    assert headers["x-polyroute-plan"] == "cascade; calls=2"
    assert text.strip()
    small, large = _stages(plan_gateway, headers["x-polyroute-trace-id"])
    assert small["model"] == "small" and small["accepted"] is False
    assert isinstance(small["confidence"], float) and small["confidence"] <= 0.0
    assert small["threshold"] == 0.0
    assert large["model"] == "large" and large["accepted"] is True


@pytest.mark.parametrize("stream", [False, True])
def test_a_sure_enough_cheap_stage_answers(plan_gateway: Gateway, stream: bool) -> None:
    headers, text, completion = _ask(plan_gateway, "Say hello.", 8, temperature=0, stream=stream)
    assert headers["x-polyroute-model"] == "small"
    assert headers["x-polyroute-plan"] == "cascade; calls=1"
    assert text.strip()
    if not stream:
        assert completion.choices[0].logprobs is None  # asked upstream, not by the client
    [small] = _stages(plan_gateway, headers["x-polyroute-trace-id"])
    assert small["accepted"] is True and -50.0 < small["confidence"] <= 0.0
    trace = plan_gateway.wait_trace(headers["x-polyroute-trace-id"])
    assert trace["cost_source"] == "usage" and trace["plan_calls"] == 1


def _text(parsed: Any, stream: bool) -> str:
    if not stream:
        return str(parsed.choices[0].message.content or "")
    with parsed:
        return "".join(c.choices[0].delta.content or "" for c in parsed if c.choices)


def test_an_ensemble_votes_over_real_answers(plan_gateway: Gateway) -> None:
    headers, text, _completion = _ask(
        plan_gateway, "Please vote: is water wet? Answer yes or no.", 4, temperature=0
    )
    assert headers["x-polyroute-decision"] == "vote"
    assert headers["x-polyroute-plan"] == "ensemble; calls=2"
    assert text
    trace = plan_gateway.wait_trace(headers["x-polyroute-trace-id"])
    [event] = [e for e in trace["plugins"] if e.get("aggregate") == "vote"]
    assert sum(event["votes"].values()) == 2 and 0.5 <= event["agreement"] <= 1.0
    assert trace["plan"] == "ensemble" and trace["cost_source"] == "usage"


@pytest.mark.parametrize("stream", [False, True])
def test_adaptive_execution_reports_sigma(plan_gateway: Gateway, stream: bool) -> None:
    headers, text, _completion = _ask(plan_gateway, "adapt: name a colour.", 4, stream=stream)
    assert headers["x-polyroute-decision"] == "adapt"
    assert headers["x-polyroute-plan"].startswith("adaptive; calls=")
    assert text.strip()
    trace = plan_gateway.wait_trace(headers["x-polyroute-trace-id"])
    [event] = [e for e in trace["plugins"] if e.get("plan") == "adaptive"]
    assert event["samples"] == 3 and 1 / 3 <= event["sigma"] <= 1.0
    assert event["models"] in (1, 2, 3)
    assert trace["plan_calls"] == 3 + event["models"] - 1


def test_an_ensemble_merges_real_answers(plan_gateway: Gateway) -> None:
    headers, text, _completion = _ask(plan_gateway, "merge: name two colours.", 8, temperature=0)
    assert headers["x-polyroute-decision"] == "merge"
    assert headers["x-polyroute-model"] == "third"
    assert headers["x-polyroute-plan"] == "ensemble; calls=3"
    assert text
    trace = plan_gateway.wait_trace(headers["x-polyroute-trace-id"])
    [event] = [e for e in trace["plugins"] if e.get("aggregate") == "merge"]
    assert event["members"] == ["small", "large"] and event["merger"] == "third"
