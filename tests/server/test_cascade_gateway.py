"""A ``cascade`` plan through the gateway app: the cheap stage is asked for logprobs and
accepted when sure, escalated when not; the trace, headers, cost and streams say so."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from fakes import Behaviour, FakeUpstream, app_clients, running
from starlette.testclient import TestClient

from polyroute import Engine, parse_config
from polyroute.errors import ConfigError
from polyroute.plans.artifact import CascadeStage, save_cascade
from polyroute.plans.cascade import VERIFY_QUESTION
from polyroute.server import create_app


@dataclass
class Sure(FakeUpstream):
    """Answers with token logprobs when asked; a verification question gets "Y" at
    ``verify_yes``."""

    logprob: float = -0.1
    verify_yes: float = -0.05

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.requests.append(body)
        b = self.next_behaviour()
        if b.mode == "status":
            return web.json_response({"error": {"message": "down"}}, status=b.status)
        last = body["messages"][-1]["content"]
        verifying = last == VERIFY_QUESTION
        text = "Y" if verifying else f"answer from {self.name}"
        lp = self.verify_yes if verifying else self.logprob
        choice: dict[str, Any] = {
            "index": 0,
            "message": {"role": "assistant", "content": text},
            "finish_reason": "stop",
            "logprobs": None,
        }
        if body.get("logprobs"):
            token = {"token": text.split(maxsplit=1)[0], "logprob": lp, "top_logprobs": []}
            if verifying:
                token["top_logprobs"] = [
                    {"token": "Y", "logprob": lp},
                    {"token": "N", "logprob": -3},
                ]
            choice["logprobs"] = {"content": [token, {"token": " x", "logprob": lp}]}
        usage = {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}
        return web.json_response(
            {
                "id": "c",
                "object": "chat.completion",
                "created": 1,
                "model": body["model"],
                "choices": [choice],
                "usage": usage,
            }
        )


Ups = tuple[Sure, Sure]


@pytest.fixture
def ups() -> Iterator[Ups]:
    with running(Sure("small"), Sure("large")) as found:
        yield found  # type: ignore[misc]


def config(ups: Ups, plan: dict[str, Any]) -> dict[str, Any]:
    small, large = ups
    return {
        "models": {
            "small": {
                "base_url": small.base_url,
                "input_price_per_mtok": 1.0,
                "output_price_per_mtok": 2.0,
            },
            "large": {
                "base_url": large.base_url,
                "input_price_per_mtok": 10.0,
                "output_price_per_mtok": 20.0,
            },
        },
        "decisions": [{"name": "exam", "models": ["small", "large"], "plan": plan}],
        "server": {"retries": 0},
    }


@pytest.fixture
def gateway(ups: Ups) -> Iterator[Callable[[dict[str, Any]], TestClient]]:
    with app_clients() as open_client:
        yield lambda plan: open_client(Engine(parse_config(config(ups, plan))))


BY_HAND = {"cascade": {"stages": ["small", "large"], "accept": {"logprob_mean": {"gt": -0.35}}}}
BODY = {"model": "auto", "messages": [{"role": "user", "content": "2+2?"}]}


def test_a_sure_cheap_stage_is_accepted(gateway: Any, ups: Ups) -> None:
    small, large = ups
    r = gateway(BY_HAND).post("/v1/chat/completions", json=BODY)
    assert r.status_code == 200, r.text
    assert r.headers["x-polyroute-model"] == "small"
    assert r.headers["x-polyroute-plan"] == "cascade; calls=1"
    answer = r.json()
    assert answer["model"] == "small" and answer["choices"][0]["logprobs"] is None
    assert small.requests[0]["logprobs"] is True and not large.requests


def test_an_unsure_cheap_stage_escalates_and_both_calls_are_paid(
    gateway: Any, ups: Ups, caplog: pytest.LogCaptureFixture
) -> None:
    small, large = ups
    small.logprob = -2.0
    with caplog.at_level("INFO", logger="polyroute.access"):
        r = gateway(BY_HAND).post("/v1/chat/completions", json=BODY)
    assert r.status_code == 200, r.text
    assert r.headers["x-polyroute-model"] == "large"
    assert r.headers["x-polyroute-plan"] == "cascade; calls=2"
    assert r.json()["choices"][0]["message"]["content"] == "answer from large"
    assert "logprobs" not in large.requests[0]  # the last stage is not asked
    line = next(
        json.loads(rec.getMessage()) for rec in caplog.records if "cascade" in rec.getMessage()
    )
    stages = [e for e in line["plugins"] if e.get("plan") == "cascade"]
    assert [(s["model"], s["accepted"]) for s in stages] == [("small", False), ("large", True)]
    assert stages[0]["confidence"] == pytest.approx(-2.0) and stages[0]["threshold"] == -0.35
    # cost: both calls, from usage (10 in, 5 out each)
    assert line["cost_usd"] == pytest.approx((10 * 1 + 5 * 2 + 10 * 10 + 5 * 20) / 1e6)
    assert line["cost_source"] == "usage" and line["usage"]["input_tokens"] == 20
    assert line["plan"] == "cascade" and line["plan_calls"] == 2


def test_the_client_asking_for_logprobs_keeps_them(gateway: Any) -> None:
    r = gateway(BY_HAND).post("/v1/chat/completions", json={**BODY, "logprobs": True})
    assert r.json()["choices"][0]["logprobs"]["content"][0]["logprob"] == pytest.approx(-0.1)


@pytest.mark.parametrize("sure", [True, False])
def test_a_streamed_cascade_replays_the_accepted_answer(gateway: Any, ups: Ups, sure: bool) -> None:
    small, _ = ups
    small.logprob = -0.1 if sure else -3.0
    r = gateway(BY_HAND).post("/v1/chat/completions", json={**BODY, "stream": True})
    assert r.status_code == 200
    chunks = [json.loads(line[6:]) for line in r.text.splitlines() if line.startswith("data: {")]
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    assert text == f"answer from {'small' if sure else 'large'}"
    assert r.text.rstrip().endswith("data: [DONE]")
    assert all("usage" not in c for c in chunks)  # the client did not ask for usage
    assert not any(s.get("stream") for s in small.requests)  # no stage is streamed


def test_verify_asks_the_same_model_and_reads_p_yes(gateway: Any, ups: Ups) -> None:
    small, _ = ups
    plan = {"cascade": {"stages": ["small", "large"], "accept": {"verify": {"gt": -0.5}}}}
    small.verify_yes = -2.0  # unsure of itself
    r = gateway(plan).post("/v1/chat/completions", json=BODY)
    assert r.headers["x-polyroute-model"] == "large"
    assert r.headers["x-polyroute-plan"] == "cascade; calls=3"
    question = small.requests[1]
    assert question["messages"][-1]["content"] == VERIFY_QUESTION
    assert question["max_tokens"] == 1 and question["logprobs"] is True
    small.verify_yes = -0.01
    r = gateway(plan).post("/v1/chat/completions", json=BODY)
    assert r.headers["x-polyroute-model"] == "small"


def test_a_failing_stage_escalates_and_a_failing_last_stage_falls_back(
    gateway: Any, ups: Ups
) -> None:
    small, large = ups
    small.behaviour = Behaviour(mode="status", status=503)
    r = gateway(BY_HAND).post("/v1/chat/completions", json=BODY)
    assert r.status_code == 200 and r.headers["x-polyroute-model"] == "large"
    small.behaviour, small.logprob = Behaviour(), -3.0
    large.behaviour = Behaviour(mode="status", status=503)
    r = gateway(BY_HAND).post("/v1/chat/completions", json=BODY)
    assert r.status_code == 200  # the unsure answer beats no answer; the trace says fallback
    assert r.headers["x-polyroute-model"] == "small"
    small.behaviour = Behaviour(mode="status", status=503)
    r = gateway(BY_HAND).post("/v1/chat/completions", json=BODY)
    assert r.status_code == 502


def test_a_cascade_can_start_from_the_selectors_choice(gateway: Any, ups: Ups) -> None:
    small, large = ups
    plan = {"cascade": {"stages": ["selected", "large"], "accept": {"logprob_mean": {"gt": -0.35}}}}
    small.logprob = -2.0  # the cheapest selector picks small; unsure: verified, escalated
    r = gateway(plan).post("/v1/chat/completions", json=BODY)
    assert r.headers["x-polyroute-model"] == "large"
    assert r.headers["x-polyroute-plan"] == "cascade; calls=2"
    assert small.requests[0]["logprobs"] is True
    raw = config(ups, plan)
    raw["decisions"][0]["select"] = {"type": "weighted", "weights": {"small": 0, "large": 1}}
    with TestClient(create_app(Engine(parse_config(raw)))) as client:
        r = client.post("/v1/chat/completions", json=BODY)
    assert r.headers["x-polyroute-plan"] == "cascade; calls=1"  # the pick is the last stage
    assert "logprobs" not in large.requests[-1]


def test_a_trained_artifact_is_served(gateway: Any, ups: Ups, tmp_path: Path) -> None:
    small, _ = ups
    stages = (CascadeStage("small", "logprob_mean", -0.5), CascadeStage("large", None, None))
    save_cascade(tmp_path / "cascade", stages, {"cost_fraction": 0.5}, {})
    small.logprob = -0.4
    r = gateway({"cascade": str(tmp_path / "cascade")}).post("/v1/chat/completions", json=BODY)
    assert r.headers["x-polyroute-model"] == "small"
    small.logprob = -0.6
    r = gateway({"cascade": str(tmp_path / "cascade")}).post("/v1/chat/completions", json=BODY)
    assert r.headers["x-polyroute-model"] == "large"


@pytest.mark.parametrize(
    ("plan", "message"),
    [
        ({"cascade": {"stages": ["small", "huge"], "accept": {"logprob_mean": {"gt": 0}}}}, "huge"),
        ({"cascade": {"stages": ["small", "large"], "accept": {"vibes": {"gt": 0}}}}, "statistic"),
        ({"cascade": {"stages": ["small", "large"], "accept": {"verify": {"gt": "x"}}}}, "gt"),
        ({"cascade": "no/such/dir"}, "manifest.json"),
        ({"ensemble2": {}}, "unknown plan"),
    ],
)
def test_bad_plans_are_config_errors_naming_the_field(
    ups: Ups, plan: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        Engine(parse_config(config(ups, plan)))
    assert "decisions[0].plan" in str(info.value) or "manifest.json" in str(info.value)
