"""Train a router with the CLI, then serve it through the gateway in front of real model servers."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from openai import OpenAI

from polyroute.eval.io import load_dataset

from .conftest import Gateway, GatewayFactory, Proc, model_entry

pytestmark = pytest.mark.e2e

DCROUTER = Path(__file__).resolve().parents[2] / "polyroute" / "data" / "dcrouter"
POOL = {"small": "qwen2.5-7b-instruct", "large": "llama-3.1-nemotron-51b-instruct"}


def write_two_model_slice(out: Path, rows: int = 400) -> tuple[Path, Path]:
    """A dcrouter slice whose two models are named like the gateway's models."""
    text = (DCROUTER / "train.jsonl").read_text(encoding="utf-8")
    source = [json.loads(line) for line in text.split("\n") if line.strip()]
    prices = json.loads((DCROUTER / "models.json").read_text())
    data, models = out / "train.jsonl", out / "models.json"
    with data.open("w") as f:
        for row in source[:: max(1, len(source) // rows)][:rows]:
            f.write(json.dumps({
                "id": row["id"], "prompt": row["prompt"],
                "scores": {k: row["scores"][v] for k, v in POOL.items()},
                "costs": {k: row["costs"][v] for k, v in POOL.items()},
            }) + "\n")  # fmt: skip
    models.write_text(json.dumps({k: prices[v] for k, v in POOL.items()}))
    return data, models


@pytest.fixture(scope="module")
def artifact(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("trained")
    data, models = write_two_model_slice(work)
    assert len(load_dataset(data, models)) == 400
    out = work / "router"
    argv = [sys.executable, "-m", "polyroute", "train", "--data", str(data), "--models",
            str(models), "--router", "knn:encoder=tfidf", "--out", str(out)]  # fmt: skip
    done = subprocess.run(argv, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    assert (out / "manifest.json").is_file()
    return out


@pytest.fixture(scope="module")
def learned_gateway(
    gateway_factory: GatewayFactory, llama_small: Proc, llama_large: Proc, artifact: Path
) -> Gateway:
    def decision(w: float) -> list[dict[str, Any]]:
        select = {"router": str(artifact), "willingness_to_pay": w}
        return [{"name": "learned", "models": ["small", "large"], "select": select}]

    config = {
        "models": {
            "small": model_entry(llama_small, 0.2, 0.2),
            "large": model_entry(llama_large, 0.9, 0.9),
        },
        "decisions": decision(1e9),  # quality first
        "profiles": {"frugal": {"decisions": decision(1e-9)}},  # cost first
    }
    return gateway_factory("gateway-learned", config)


def route(gateway: Gateway, prompt: str, model: str = "auto") -> dict[str, Any]:
    with gateway.client() as client:
        raw = client.post("/route", body={"model": model, "prompt": prompt}, cast_to=object)
    assert isinstance(raw, dict)
    return raw


def test_trace_shows_predicted_quality_and_cost(learned_gateway: Gateway) -> None:
    trace = route(learned_gateway, "What is the capital of France?")
    assert trace["decision"] == "learned"
    estimates = {e["model"]: e for e in trace["estimates"]}
    assert set(estimates) == {"small", "large"}
    assert all(0.0 <= e["quality"] <= 1.0 and e["cost_usd"] > 0 for e in estimates.values())
    best = max(estimates.values(), key=lambda e: e["quality"])
    assert trace["candidates"][0] == best["model"]  # w = 1e9: quality decides


def test_willingness_to_pay_moves_choice_to_cheaper_model(learned_gateway: Gateway) -> None:
    trace = route(learned_gateway, "Solve: 12 * 7 + 3 = ?", model="frugal")
    assert trace["candidates"] == ["small", "large"]


def test_trained_router_answers_through_openai_client(learned_gateway: Gateway) -> None:
    client: OpenAI
    with learned_gateway.client() as client:
        raw = client.chat.completions.with_raw_response.create(
            model="frugal", messages=[{"role": "user", "content": "Say hi."}], max_tokens=8
        )
    assert raw.headers["x-polyroute-decision"] == "learned"
    assert raw.headers["x-polyroute-model"] == "small"
    assert raw.parse().model == "small"
