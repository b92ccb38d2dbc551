"""A cascade trained by ``polyroute train --plan cascade`` and served by a real gateway
process, against an upstream that replays the recorded answers of 9 models with their
logprobs and token counts (``../shared/data/cascades/mc``, read in place): every answer the
``openai`` client gets, its logged cost and each stage's logged confidence are what the
offline simulation of the same artifact predicts for those rows.

(The quick version of ``benchmarks/bench_cascade_gateway.py``: a 60-row slice, trained on
40 rows, 20 served.)
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest
from aiohttp import web
from fakes import FakeUpstream, running

from polyroute.plans import artifact
from polyroute.plans.cascade_data import load_cascade_data
from polyroute.plans.cascade_model import simulate
from polyroute.tokens import request_cost_usd

if TYPE_CHECKING:
    from tests.e2e.conftest import GatewayFactory

pytestmark = pytest.mark.e2e

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data" / "cascades" / "mc"
#: the slice: a seeded permutation's first 60 rows; its chain has three stages and the 20
#: served rows are answered by each of them (accepted at 0, escalated once, then twice)
SEED, TRAIN, SERVED = 2, 40, 20


class ReplayUpstream(FakeUpstream):
    """``/v1/chat/completions`` answering the recorded answer of the requested model to the
    row whose ``prompt`` is the last user message (``user``: the row id, for a prompt the
    data hold twice), with its recorded logprobs (when asked) and token counts."""

    def __init__(self, rows: list[dict[str, Any]]) -> None:
        super().__init__("replay", paths=("/v1/chat/completions",))
        self.rows: dict[str, list[dict[str, Any]]] = {}
        for row in rows:
            self.rows.setdefault(row["prompt"], []).append(row)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.requests.append(body)
        users = [m for m in body["messages"] if m["role"] == "user"]
        rows = self.rows.get(users[-1]["content"] if users else "", [])
        rows = [r for r in rows if len(rows) == 1 or r["id"] == body.get("user")]
        model = body["model"]
        if len(rows) != 1 or model not in rows[0]["answers"]:
            return web.json_response({"error": {"message": "no recorded answer"}}, status=404)
        row = rows[0]
        assert [m["content"] for m in body["messages"] if m["role"] == "system"] == [
            row["system_prompt"]
        ]
        text, tokens = row["answers"][model], row["tokens"][model]
        logprobs = None
        if body.get("logprobs") is True:
            top = int(body.get("top_logprobs") or 0)
            entries = [
                {"token": text if i == 0 else "", "logprob": lp, "bytes": None}
                for i, lp in enumerate(row["logprobs"][model])
            ]
            logprobs = {"content": [{**e, "top_logprobs": [e][:top]} for e in entries]}
        message = {"role": "assistant", "content": text}
        return web.json_response(
            {
                "id": f"replay-{row['id']}",
                "object": "chat.completion",
                "created": 0,
                "model": model,
                "choices": [
                    {"index": 0, "message": message, "logprobs": logprobs, "finish_reason": "stop"}
                ],
                "usage": {
                    "prompt_tokens": tokens["in"],
                    "completion_tokens": tokens["out"],
                    "total_tokens": tokens["in"] + tokens["out"],
                },
            }
        )


def test_a_trained_cascade_serves_as_simulated(
    gateway_factory: GatewayFactory, tmp_path: Path
) -> None:
    if not (SHARED / "train.jsonl").is_file():  # never a skip: CI always has ../shared
        pytest.fail(f"the shared cascade data are missing: {SHARED}/train.jsonl")
    lines = (SHARED / "train.jsonl").read_text().splitlines()
    prices = json.loads((SHARED / "models.json").read_text())
    picked = np.random.default_rng(SEED).permutation(len(lines))[: TRAIN + SERVED]
    train_idx, served_idx = np.sort(picked[:TRAIN]), np.sort(picked[TRAIN:])

    data_dir = tmp_path / "train"
    data_dir.mkdir()
    (data_dir / "train.jsonl").write_text("".join(lines[i] + "\n" for i in train_idx))
    shutil.copy(SHARED / "models.json", data_dir / "models.json")
    out = tmp_path / "cascade"
    argv = [sys.executable, "-m", "polyroute", "train", "--plan", "cascade",
            "--data", str(data_dir), "--out", str(out),
            "--target-cost-fraction", "0.5"]  # fmt: skip
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    spec = artifact.load_cascade(out)
    assert len(spec.stages) >= 2, f"trained a single model, no cascade: {done.stdout}"

    # what the artifact does on the served rows' recorded confidences and costs
    statistic = str(spec.stages[0].statistic)
    data = load_cascade_data(SHARED, statistic).subset(served_idx)
    col = {m: j for j, m in enumerate(data.models)}
    chain = tuple(col[s.model] for s in spec.stages)
    thresholds = np.array([s.threshold for s in spec.stages[:-1]])
    _, sim_cost, answered = simulate(data.scores, data.costs, data.confidence, chain, thresholds)

    rows = [json.loads(lines[i]) for i in served_idx]
    with running(ReplayUpstream([json.loads(line) for line in lines])) as (replay,):
        models = {
            name: {"base_url": replay.base_url, "model": name, "timeout_s": 10, **price}
            for name, price in prices.items()
        }
        decision = {"name": "exam", "models": list(prices), "plan": {"cascade": str(out)}}
        gateway = gateway_factory("gateway-cascade-replay", {"models": models,
                                                             "decisions": [decision]})  # fmt: skip
        seen: list[tuple[dict[str, Any], Any, str]] = []
        with gateway.client() as client:
            for row in rows:
                raw = client.chat.completions.with_raw_response.create(
                    model="auto",
                    messages=[
                        {"role": "system", "content": row["system_prompt"]},
                        {"role": "user", "content": row["prompt"]},
                    ],
                    temperature=0,
                    max_tokens=5,
                    user=row["id"],
                )
                seen.append((row, raw.parse(), raw.headers["x-polyroute-trace-id"]))
                assert raw.headers["x-polyroute-decision"] == "exam"
        for i, (row, completion, trace_id) in enumerate(seen):
            stage = int(answered[i])
            model = spec.stages[stage].model
            assert completion.model == model, row["id"]
            assert completion.choices[0].message.content == row["answers"][model]
            assert completion.choices[0].logprobs is None  # asked by the plan, not the client
            trace = gateway.wait_trace(trace_id)
            events = [e for e in trace["plugins"] if e.get("plan") == "cascade"]
            assert [e["model"] for e in events] == [s.model for s in spec.stages[: stage + 1]]
            assert [e["accepted"] for e in events] == [False] * stage + [True]
            judged = events[:-1] if stage == len(chain) - 1 else events  # the last: no rule
            for e, s in zip(judged, spec.stages[: len(judged)], strict=True):
                assert e["statistic"] == statistic and e["threshold"] == s.threshold
                assert e["confidence"] == float(np.mean(row["logprobs"][s.model]))
                assert e["confidence"] == data.confidence[i, col[s.model]]
            assert trace["model"] == model and trace["plan_calls"] == stage + 1
            assert trace["cost_source"] == "usage"
            usage = 0.0
            for s in spec.stages[: stage + 1]:
                t, p = row["tokens"][s.model], prices[s.model]
                usage += request_cost_usd(
                    t["in"], t["out"], p["input_price_per_mtok"], p["output_price_per_mtok"]
                )
            assert trace["cost_usd"] == usage  # the recorded usage, at the configured prices
            assert trace["cost_usd"] == pytest.approx(sim_cost[i], rel=1e-12)
        assert len(replay.requests) == int(answered.sum()) + len(rows)
    # the slice exercises every path: accepted at once, escalated, escalated to the last
    assert set(answered.tolist()) == set(range(len(chain))), answered
