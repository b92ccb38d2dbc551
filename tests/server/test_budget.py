"""Budgets through the gateway app: ``hard`` refuses with 429 once spent (per key when
scoped so), ``steer`` scales a learned selector's willingness to pay by the pace."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fakes import FakeUpstream, gateway_config, running
from routers.learned_fixtures import synthetic
from starlette.testclient import TestClient

from polyroute import Engine, parse_config
from polyroute.budget import Budget, parse_budget
from polyroute.errors import ConfigError
from polyroute.routers.artifact import save_router
from polyroute.routers.learned.knn import KNNRouter
from polyroute.server import create_app
from polyroute.server.security import hash_key

BODY = {"model": "auto", "messages": [{"role": "user", "content": "hi"}]}
KEY_A, KEY_B = "pr-test-key-alpha-0123456789", "pr-test-key-bravo-0123456789"
KEYS = [{"name": "a", "sha256": hash_key(KEY_A)}, {"name": "b", "sha256": hash_key(KEY_B)}]


def client_for(config: dict[str, Any]) -> tuple[TestClient, Engine]:
    engine = Engine(parse_config(config))
    return TestClient(create_app(engine)), engine


def test_a_hard_budget_refuses_once_spent(upstreams: tuple[FakeUpstream, ...]) -> None:
    small, large = upstreams
    config = gateway_config(small.base_url, large.base_url)
    # each answer: 3 + 4 tokens at $0.1 per million on `small` = $7e-7
    config["budget"] = {"usd": 1e-6, "per": "day", "mode": "hard"}
    client, _ = client_for(config)
    with client:
        codes = [client.post("/v1/chat/completions", json=BODY).status_code for _ in range(3)]
        refused = client.post("/v1/chat/completions", json=BODY)
    assert codes == [200, 200, 429]
    error = refused.json()["error"]
    assert error["code"] == "budget_exceeded" and "daily budget 'global'" in error["message"]
    assert "resets at" in error["message"]
    assert len(small.requests) == 2  # a refused request calls no model


def test_a_budget_scoped_per_key(upstreams: tuple[FakeUpstream, ...]) -> None:
    small, large = upstreams
    config = gateway_config(small.base_url, large.base_url, api_keys=KEYS)
    config["decisions"][1]["budget"] = {"usd": 5e-7, "mode": "hard", "scope": "key"}
    client, _ = client_for(config)
    a, b = {"Authorization": f"Bearer {KEY_A}"}, {"Authorization": f"Bearer {KEY_B}"}
    with client:
        first = client.post("/v1/chat/completions", json=BODY, headers=a).status_code
        second = client.post("/v1/chat/completions", json=BODY, headers=a).status_code
        other = client.post("/v1/chat/completions", json=BODY, headers=b).status_code
    assert (first, second, other) == (200, 429, 200)


def test_a_streamed_answer_is_charged_when_it_ends(upstreams: tuple[FakeUpstream, ...]) -> None:
    small, large = upstreams
    config = gateway_config(small.base_url, large.base_url)
    config["budget"] = {"usd": 1.0, "mode": "hard"}
    client, engine = client_for(config)
    with client:
        for _ in range(2):
            r = client.post("/v1/chat/completions", json={**BODY, "stream": True})
            assert r.status_code == 200 and "[DONE]" in r.text
        budget = engine._direct["small"].budgets[0]
        spent = client.portal.call(engine.budgets.spent, budget, "")  # type: ignore[union-attr]
    assert spent is not None and spent > 0


@pytest.fixture
def learned(tmp_path: Path) -> Iterator[tuple[dict[str, Any], FakeUpstream, FakeUpstream]]:
    artifact = save_router(KNNRouter(encoder="tfidf", k=5).fit(synthetic()), tmp_path / "knn")
    with running(FakeUpstream("small"), FakeUpstream("big")) as (small, big):
        select = {"router": str(artifact), "willingness_to_pay": 0.01}
        config: dict[str, Any] = {
            "models": {
                "small": {"base_url": small.base_url, "input_price_per_mtok": 1.0,
                          "output_price_per_mtok": 1.0},
                "big": {"base_url": big.base_url, "input_price_per_mtok": 10.0,
                        "output_price_per_mtok": 10.0},
            },
            "decisions": [{"name": "learned", "models": ["small", "big"], "select": select,
                           "budget": {"usd": 1.0, "per": "day", "mode": "steer"}}],
        }  # fmt: skip
        yield config, small, big


def test_steering_lowers_the_willingness_to_pay_when_spending_runs_ahead(
    learned: tuple[dict[str, Any], FakeUpstream, FakeUpstream],
    caplog: pytest.LogCaptureFixture,
) -> None:
    config, _, _ = learned
    maths = {"model": "auto", "messages": [{"role": "user", "content": "compute the integral "
                                            "of 12 x squared plus 7 dx please"}]}  # fmt: skip
    client, engine = client_for(config)
    with client, caplog.at_level("INFO", logger="polyroute.access"):
        assert client.post("/v1/chat/completions", json=maths).headers["x-polyroute-model"] == "big"
        budget = engine.profiles["auto"][0].budgets[0]
        key = budget.key("", engine.budgets.clock())
        client.portal.call(engine.store.incr, key, 100.0)  # type: ignore[union-attr]
        engine.budgets._seen.clear()
        assert (
            client.post("/v1/chat/completions", json=maths).headers["x-polyroute-model"] == "small"
        )
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "polyroute.access"]
    assert lines[0]["willingness_to_pay"] == pytest.approx(0.01 * math.e)  # behind pace
    assert lines[1]["willingness_to_pay"] == pytest.approx(0.01 / 16)


def test_the_pace_sets_the_scale() -> None:
    budget = Budget("b", usd=10.0, per="day", steer=True, hard=False)
    noon = 86400 * 100 + 43200
    assert budget.scale(5.0, noon) == pytest.approx(1.0)  # on pace
    assert budget.scale(10.0, noon) < 0.5 < 2 < budget.scale(0.0, noon)
    assert budget.scale(1000.0, noon) == pytest.approx(1 / 16)  # clamped


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ({"usd": 0}, "usd"),
        ({"usd": 5, "per": "week"}, "per"),
        ({"usd": 5, "mode": "pray"}, "mode"),
        ({"usd": 5, "scope": "team"}, "scope"),
        ({"usd": 5, "cap": 1}, "cap"),
    ],
)
def test_bad_budgets_name_the_field(raw: dict[str, Any], field: str) -> None:
    with pytest.raises(ConfigError, match=field):
        parse_budget(raw, "b", "cfg.yaml: budget")


def test_spending_behind_pace_raises_the_willingness_to_pay(
    learned: tuple[dict[str, Any], FakeUpstream, FakeUpstream],
    caplog: pytest.LogCaptureFixture,
) -> None:
    config, _, _ = learned
    client, _ = client_for(config)
    with client, caplog.at_level("INFO", logger="polyroute.access"):
        client.post("/v1/chat/completions", json=BODY)  # nothing spent yet: behind pace
    line = next(json.loads(r.getMessage()) for r in caplog.records if r.name == "polyroute.access")
    assert line["willingness_to_pay"] > 0.01
