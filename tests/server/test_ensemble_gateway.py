"""``ensemble`` (vote, merge) and ``adaptive`` plans through the gateway app, against fakes
that answer fixed texts."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web
from fakes import Behaviour, FakeUpstream, app_clients, running
from starlette.testclient import TestClient

from polyroute import Engine, parse_config
from polyroute.errors import ConfigError
from polyroute.plans.ensemble import MERGE_INSTRUCTION


@dataclass
class Says(FakeUpstream):
    """Answers the texts of ``says`` in turn (the last one repeats)."""

    says: list[str] = field(default_factory=lambda: ["B"])

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.requests.append(body)
        if self.next_behaviour().mode == "status":
            return web.json_response({"error": {"message": "down"}}, status=503)
        text = self.says.pop(0) if len(self.says) > 1 else self.says[0]
        message = {"role": "assistant", "content": text}
        return web.json_response(
            {
                "id": "c",
                "object": "chat.completion",
                "created": 1,
                "model": body["model"],
                "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 10, "completion_tokens": 1, "total_tokens": 11},
            }
        )


Ups = tuple[Says, Says, Says]
BODY = {"model": "auto", "messages": [{"role": "user", "content": "A, B, C or D?"}]}


@pytest.fixture
def ups() -> Iterator[Ups]:
    with running(Says("a"), Says("b"), Says("c")) as found:
        yield found  # type: ignore[misc]


def config(ups: Ups, plan: dict[str, Any]) -> dict[str, Any]:
    return {
        "models": {
            u.name: {"base_url": u.base_url, "input_price_per_mtok": p, "output_price_per_mtok": p}
            for u, p in zip(ups, (1.0, 2.0, 4.0), strict=True)
        },
        "decisions": [{"name": "d", "models": ["a", "b", "c"], "plan": plan}],
        "server": {"retries": 0},
    }


@pytest.fixture
def gateway(ups: Ups) -> Iterator[Callable[[dict[str, Any]], TestClient]]:
    with app_clients() as open_client:
        yield lambda plan: open_client(Engine(parse_config(config(ups, plan))))


def logged(caplog: pytest.LogCaptureFixture) -> dict[str, Any]:
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "polyroute.access"]
    return lines[-1]


VOTE = {"ensemble": {"aggregate": "vote"}}


def test_a_vote_takes_the_majority_in_normalised_form(
    gateway: Any, ups: Ups, caplog: pytest.LogCaptureFixture
) -> None:
    a, b, c = ups
    a.says, b.says, c.says = ["C"], [" b."], ["B"]
    with caplog.at_level("INFO", logger="polyroute.access"):
        r = gateway(VOTE).post("/v1/chat/completions", json=BODY)
    assert r.status_code == 200, r.text
    assert r.headers["x-polyroute-model"] == "b"  # the first model that gave the winner
    assert r.headers["x-polyroute-plan"] == "ensemble; calls=3"
    assert r.json()["choices"][0]["message"]["content"] == " b."
    line = logged(caplog)
    [event] = [e for e in line["plugins"] if e.get("aggregate") == "vote"]
    assert event["votes"] == {"c": 1, "b": 2} and event["agreement"] == pytest.approx(2 / 3)
    assert line["cost_usd"] == pytest.approx((11 * 1 + 11 * 2 + 11 * 4) / 1e6)


def test_a_vote_without_a_majority_goes_to_the_first_listed(gateway: Any, ups: Ups) -> None:
    a, b, c = ups
    a.says, b.says, c.says = ["A"], ["B"], ["C"]
    r = gateway(VOTE).post("/v1/chat/completions", json={**BODY, "stream": True})
    assert r.status_code == 200
    assert r.headers["x-polyroute-model"] == "a"
    assert '"content":"A"' in r.text.replace(" ", "") and r.text.rstrip().endswith("[DONE]")


def test_a_failed_member_is_left_out_and_all_failing_is_an_error(gateway: Any, ups: Ups) -> None:
    a, b, c = ups
    a.behaviour = Behaviour(mode="status", status=503)
    b.says, c.says = ["D"], ["D"]
    r = gateway(VOTE).post("/v1/chat/completions", json=BODY)
    assert r.status_code == 200 and r.headers["x-polyroute-plan"] == "ensemble; calls=2"
    for u in ups:
        u.behaviour = Behaviour(mode="status", status=503)
    r = gateway(VOTE).post("/v1/chat/completions", json=BODY)
    assert r.status_code == 502


def test_merge_asks_the_merger_with_every_answer(gateway: Any, ups: Ups) -> None:
    a, b, c = ups
    a.says, b.says, c.says = ["Paris."], ["Lyon."], ["Paris is the capital."]
    plan = {"ensemble": {"aggregate": "merge", "merger": "c"}}
    r = gateway(plan).post("/v1/chat/completions", json=BODY)
    assert r.status_code == 200, r.text
    assert r.headers["x-polyroute-model"] == "c"
    assert r.headers["x-polyroute-plan"] == "ensemble; calls=3"
    [asked] = c.requests
    last = asked["messages"][-1]["content"]
    assert last.startswith(MERGE_INSTRUCTION) and "Paris." in last and "Lyon." in last


ADAPTIVE = {"adaptive": {"probe": "a", "samples": 3}}


def test_adaptive_unanimous_probe_answers_alone(
    gateway: Any, ups: Ups, caplog: pytest.LogCaptureFixture
) -> None:
    a, b, c = ups
    a.says = ["B", "b", "B."]
    with caplog.at_level("INFO", logger="polyroute.access"):
        r = gateway(ADAPTIVE).post("/v1/chat/completions", json={**BODY, "temperature": 0})
    assert r.headers["x-polyroute-model"] == "a"
    assert r.headers["x-polyroute-plan"] == "adaptive; calls=3"
    assert not b.requests and not c.requests
    assert all(s["temperature"] == 0.7 for s in a.requests)  # samples must be able to differ
    [event] = [e for e in logged(caplog)["plugins"] if e.get("plan") == "adaptive"]
    assert event["sigma"] == 1.0 and event["models"] == 1


def test_adaptive_partial_agreement_asks_one_more_model(gateway: Any, ups: Ups) -> None:
    a, b, c = ups
    a.says, b.says = ["B", "B", "C"], ["B"]
    r = gateway(ADAPTIVE).post("/v1/chat/completions", json=BODY)
    assert r.headers["x-polyroute-model"] == "b"
    assert r.headers["x-polyroute-plan"] == "adaptive; calls=4"
    assert not c.requests


def test_adaptive_no_agreement_runs_three_models_and_votes(gateway: Any, ups: Ups) -> None:
    a, b, c = ups
    plan = {"adaptive": {"probe": "a", "samples": 3, "majority": 0.7}}
    a.says, b.says, c.says = ["A", "A", "C"], ["D"], ["A"]
    r = gateway(plan).post("/v1/chat/completions", json=BODY)
    assert r.headers["x-polyroute-plan"] == "adaptive; calls=5"
    assert r.json()["choices"][0]["message"]["content"] == "A"
    assert r.headers["x-polyroute-model"] == "c"  # ties go to the strongest model asked


@pytest.mark.parametrize(
    ("plan", "message"),
    [
        ({"ensemble": {"aggregate": "average"}}, "aggregate"),
        ({"ensemble": {"aggregate": "merge"}}, "merger"),
        ({"ensemble": {"aggregate": "vote", "models": ["a", "zz"]}}, "zz"),
        ({"adaptive": {"probe": "zz"}}, "probe"),
        ({"adaptive": {"probe": "a", "samples": 1}}, "samples"),
        ({"adaptive": {"probe": "a", "majority": 1.5}}, "majority"),
    ],
)
def test_bad_plans_name_the_field(ups: Ups, plan: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        Engine(parse_config(config(ups, plan)))
    assert "decisions[0].plan" in str(info.value)
