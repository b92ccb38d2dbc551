"""Learning from traffic through real gateway processes with the ``openai`` client: two
``polyroute serve`` processes on one Redis share a bandit; feedback sent to one that rates
a model's answers bad moves both away from it; a hard budget refuses once spent."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from fakes import FakeUpstream, running

if TYPE_CHECKING:
    from tests.e2e.conftest import Gateway, GatewayFactory

pytestmark = pytest.mark.e2e
REDIS = "redis://127.0.0.1:6379/14"


@pytest.fixture(scope="module")
def pair(gateway_factory: GatewayFactory) -> Iterator[tuple[Gateway, Gateway]]:
    redis = pytest.importorskip("redis")
    redis.Redis.from_url(REDIS).flushdb()
    with running(FakeUpstream("small"), FakeUpstream("large")) as (small, large):
        shared = {"type": "redis", "url": REDIS, "prefix": "e2e-learning:"}
        config: dict[str, Any] = {
            "models": {
                "small": {"base_url": small.base_url, "input_price_per_mtok": 0.1,
                          "output_price_per_mtok": 0.1},
                "large": {"base_url": large.base_url, "input_price_per_mtok": 1.0,
                          "output_price_per_mtok": 1.0},
            },
            "decisions": [{"name": "learn", "models": ["small", "large"],
                           "select": {"type": "bandit", "sync_s": 0.05}}],
            "store": shared,
            "feedback": {"store": shared},
            "budget": {"usd": 1.0, "per": "day", "mode": "hard"},
        }  # fmt: skip
        yield gateway_factory("gw-learn-a", config), gateway_factory("gw-learn-b", config)


def _ask(gateway: Gateway, prompt: str) -> tuple[str, str]:
    with gateway.client() as client:
        raw = client.chat.completions.with_raw_response.create(
            model="auto", messages=[{"role": "user", "content": prompt}]
        )
    assert raw.parse().choices[0].message.content
    return raw.headers["x-polyroute-model"], raw.headers["x-polyroute-trace-id"]


def _rate(gateway: Gateway, trace_id: str, label: str) -> None:
    deadline = time.monotonic() + 5
    while True:  # the record is written just after the answer
        r = httpx.post(
            f"{gateway.proc.url}/v1/feedback", json={"trace_id": trace_id, "label": label}
        )
        if r.status_code == 204 or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert r.status_code == 204, r.text


def test_feedback_to_one_gateway_moves_both(pair: tuple[Gateway, Gateway]) -> None:
    a, b = pair
    first, _ = _ask(b, "what is 1 plus 2?")  # b's bandit exists; it is never rated
    other = "large" if first == "small" else "small"
    picked = []
    for i in range(30):
        model, trace_id = _ask(a, f"what is {i} plus {i + 2}?")
        picked.append(model)
        _rate(a, trace_id, "bad" if model == first else "good")
    assert picked[-8:] == [other] * 8, picked  # a moved away within 22 rated requests
    _ask(b, "what is 3 plus 4?")  # b pulls a's updates (polled)
    time.sleep(0.3)
    from_b = [_ask(b, f"what is {i} times 2?")[0] for i in range(6)]
    assert from_b == [other] * 6, from_b
    trace = b.wait_trace(_ask(b, "what is 9 plus 9?")[1])
    [event] = [e for e in trace["plugins"] if "bandit" in e]
    assert event["chosen"] == other


def test_a_hard_budget_is_shared_and_enforced(pair: tuple[Gateway, Gateway]) -> None:
    import redis

    a, b = pair
    key = f"e2e-learning:budget:global:{int(time.time() // 86400)}"
    redis.Redis.from_url(REDIS).incrbyfloat(key, 2.0)  # spent past the $1 day budget
    time.sleep(1.1)  # each replica trusts its reading of the counter for a second
    for gateway in (a, b):
        r = httpx.post(
            f"{gateway.proc.url}/v1/chat/completions",
            json={"model": "auto", "messages": [{"role": "user", "content": "hi"}]},
        )
        assert r.status_code == 429 and r.json()["error"]["code"] == "budget_exceeded"


def test_a_steering_budget_turns_a_burst_to_the_cheap_model(
    gateway_factory: GatewayFactory, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """A learned selector under `budget: {mode: steer}`: once the first (strong, dear)
    answer puts spending far ahead of the period's pace, W drops and the rest of the burst
    goes to the cheap model; nothing is refused."""
    from routers.learned_fixtures import synthetic

    from polyroute.routers.artifact import save_router
    from polyroute.routers.learned.knn import KNNRouter

    where = tmp_path_factory.mktemp("steer")
    artifact = save_router(KNNRouter(encoder="tfidf", k=5).fit(synthetic()), where / "knn")
    with running(FakeUpstream("small"), FakeUpstream("big")) as (small, big):
        config: dict[str, Any] = {
            "models": {
                "small": {"base_url": small.base_url, "input_price_per_mtok": 1.0,
                          "output_price_per_mtok": 1.0},
                "big": {"base_url": big.base_url, "input_price_per_mtok": 10.0,
                        "output_price_per_mtok": 10.0},
            },
            "decisions": [{"name": "learned", "models": ["small", "big"],
                           "select": {"router": str(artifact), "willingness_to_pay": 0.01},
                           "budget": {"usd": 1e-5, "per": "hour", "mode": "steer"}}],
        }  # fmt: skip
        gateway = gateway_factory("gw-steer", config)
        maths = "compute the integral of {} x squared plus 7 dx please"
        picked, ws = [], []
        for i in range(10):
            model, trace_id = _ask(gateway, maths.format(11 + i))
            picked.append(model)
            ws.append(gateway.wait_trace(trace_id)["willingness_to_pay"])
            time.sleep(1.05 if i == 0 else 0.0)  # the replica re-reads its counter each second
    assert picked == ["big"] + ["small"] * 9, picked
    assert ws[0] > 0.01 and all(w == pytest.approx(0.01 / 16) for w in ws[1:]), ws
