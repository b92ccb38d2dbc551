"""``select: {type: bandit}`` through the gateway app: feedback that rates one model's
answers bad moves the bandit away from it; two gateways on one Redis learn together."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from fakes import FakeUpstream, running
from starlette.testclient import TestClient

from polyroute import Engine, parse_config
from polyroute.errors import ConfigError
from polyroute.server import create_app

REDIS = "redis://127.0.0.1:6379/15"
PROMPTS = [f"question number {i}: what is {i} plus {i + 1}?" for i in range(60)]


@pytest.fixture
def ups() -> Iterator[tuple[FakeUpstream, FakeUpstream]]:
    with running(FakeUpstream("small"), FakeUpstream("large")) as found:
        yield found  # type: ignore[misc]


def config(ups: tuple[FakeUpstream, FakeUpstream], **store: Any) -> dict[str, Any]:
    small, large = ups
    shared = store or {"type": "memory"}
    return {
        "models": {
            "small": {"base_url": small.base_url, "input_price_per_mtok": 0.1},
            "large": {"base_url": large.base_url, "input_price_per_mtok": 1.0},
        },
        "decisions": [
            {
                "name": "learn",
                "models": ["small", "large"],
                "select": {"type": "bandit", "algorithm": "linucb", "sync_s": 0.01},
            }
        ],
        "store": shared,
        "feedback": {"store": shared},
    }


def ask(client: TestClient, prompt: str) -> tuple[str, str]:
    r = client.post(
        "/v1/chat/completions",
        json={"model": "auto", "messages": [{"role": "user", "content": prompt}]},
    )
    assert r.status_code == 200, r.text
    return r.headers["x-polyroute-model"], r.headers["x-polyroute-trace-id"]


def rate(client: TestClient, trace_id: str, label: str) -> None:
    deadline = time.monotonic() + 5
    while True:  # the trace record is written just after the answer
        r = client.post("/v1/feedback", json={"trace_id": trace_id, "label": label})
        if r.status_code == 204 or time.monotonic() > deadline:
            break
        time.sleep(0.02)
    assert r.status_code == 204, r.text


def teach(client: TestClient, prompts: list[str], bad: str) -> list[str]:
    """Ask each prompt and rate the answer: ``bad``'s are bad, the other's good."""
    chosen = []
    for prompt in prompts:
        model, trace_id = ask(client, prompt)
        chosen.append(model)
        rate(client, trace_id, "bad" if model == bad else "good")
    return chosen


def test_bad_feedback_moves_the_bandit_away_from_a_model(
    ups: tuple[FakeUpstream, FakeUpstream],
) -> None:
    engine = Engine(parse_config(config(ups)))
    with TestClient(create_app(engine)) as client:
        first = ask(client, PROMPTS[0])[0]
        other = "large" if first == "small" else "small"
        chosen = teach(client, PROMPTS[1:40], bad=first)
    assert chosen[-10:] == [other] * 10, chosen  # within 30 rated requests it moved away


def test_two_gateways_on_one_redis_learn_together(
    ups: tuple[FakeUpstream, FakeUpstream],
) -> None:
    redis = pytest.importorskip("redis")
    redis.Redis.from_url(REDIS).flushdb()
    shared = {"type": "redis", "url": REDIS, "prefix": "bandit-test:"}
    a = TestClient(create_app(Engine(parse_config(config(ups, **shared)))))
    b = TestClient(create_app(Engine(parse_config(config(ups, **shared)))))
    with a, b:
        first = ask(b, PROMPTS[0])[0]  # b routes once (its bandit exists), learns nothing
        other = "large" if first == "small" else "small"
        teach(a, PROMPTS[1:40], bad=first)  # only a is rated
        time.sleep(0.05)
        ask(b, PROMPTS[40])  # b applies a's updates (polled every sync_s)
        time.sleep(0.2)
        chosen = [ask(b, p)[0] for p in PROMPTS[41:51]]
    assert chosen == [other] * 10, chosen


def test_bad_bandit_options_are_config_errors(ups: tuple[FakeUpstream, FakeUpstream]) -> None:
    raw = config(ups)
    raw["decisions"][0]["select"] = {"type": "bandit", "algorithm": "greedy"}
    with pytest.raises(ConfigError, match="algorithm"):
        Engine(parse_config(raw))
    raw["decisions"][0]["select"] = {"type": "bandit", "algorithm": "ema", "warm_start": "x"}
    with pytest.raises(ConfigError, match="warm_start"):
        Engine(parse_config(raw))


def test_a_store_that_is_down_never_fails_a_request(
    ups: tuple[FakeUpstream, FakeUpstream], caplog: pytest.LogCaptureFixture
) -> None:
    down = {"type": "redis", "url": "redis://127.0.0.1:9/0"}
    raw = config(ups, **down)
    raw["feedback"] = {"store": {"type": "memory"}}
    with TestClient(create_app(Engine(parse_config(raw)))) as client:
        for prompt in PROMPTS[:3]:
            _, trace_id = ask(client, prompt)
            rate(client, trace_id, "good")
            time.sleep(0.05)
        with caplog.at_level("INFO", logger="polyroute.access"):
            ask(client, PROMPTS[4])
    line = next(r.getMessage() for r in caplog.records if r.name == "polyroute.access")
    assert '"shared":"unavailable"' in line


def test_energy_per_request_weighs_in_the_reward(ups: tuple[FakeUpstream, FakeUpstream]) -> None:
    """GreenServ's knob: both models answer well, the one that costs energy loses."""
    raw = config(ups)
    select = raw["decisions"][0]["select"]
    select.update(energy_weight=1.0, energy_wh={"small": 2.0, "large": 2.0})
    with TestClient(create_app(Engine(parse_config(raw)))) as client:
        first = ask(client, PROMPTS[0])[0]
        other = "large" if first == "small" else "small"
        select["energy_wh"][other] = 0.0
    raw["decisions"][0]["select"] = select
    with TestClient(create_app(Engine(parse_config(raw)))) as client:
        chosen = []
        for prompt in PROMPTS[1:30]:
            model, trace_id = ask(client, prompt)
            chosen.append(model)
            rate(client, trace_id, "good")
    assert chosen[-8:] == [other] * 8, chosen


def _tiny_artifact(path: Any) -> str:
    """A kNN artifact over ``small`` / ``large`` (the learned-router tests' data)."""
    from dataclasses import replace

    from routers.learned_fixtures import synthetic

    from polyroute.routers.artifact import save_router
    from polyroute.routers.learned.knn import KNNRouter

    data = replace(synthetic(), models=("small", "large"), prices=None)
    return str(save_router(KNNRouter(encoder="tfidf", k=5).fit(data), path / "knn"))


@pytest.mark.parametrize("anchor", [True, False])
def test_a_warm_bandit_shows_the_w_its_spend_anchor_chose(
    ups: tuple[FakeUpstream, FakeUpstream],
    tmp_path: Any,
    caplog: pytest.LogCaptureFixture,
    anchor: bool,
) -> None:
    raw = config(ups)
    select = raw["decisions"][0]["select"]
    select.update(warm_start=_tiny_artifact(tmp_path), willingness_to_pay=1.5e-5)
    if not anchor:
        select["params"] = {"spend_anchor": 0}
    with TestClient(create_app(Engine(parse_config(raw)))) as client:
        for prompt in PROMPTS[:6]:
            _, trace_id = ask(client, prompt)
            rate(client, trace_id, "good")
            time.sleep(0.05)
        with caplog.at_level("INFO", logger="polyroute.access"):
            ask(client, PROMPTS[7])
    line = next(r.getMessage() for r in caplog.records if r.name == "polyroute.access")
    assert ('"anchored_w"' in line) is anchor, line
