"""A real ``polyroute serve`` with a trained router artifact answers concurrent requests.

The gateway batches concurrent requests' predictions (``LearnedSelector.aorder``);
each request must still be routed by its own prompt: maths prompts (only ``big``
solves them) to ``big``, greetings (both solve them, ``small`` is cheaper) to
``small``, whatever else is in the batch.
"""

from __future__ import annotations

import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import orjson
import pytest
from fakes import FakeUpstream, running
from procs import Proc, gateway_running
from routers.learned_fixtures import synthetic

from polyroute.routers.artifact import save_router
from polyroute.routers.learned.knn import KNNRouter

REQUESTS = 48
CLIENTS = 16
TIMEOUT_S = 30.0

_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


@pytest.fixture(scope="module", params=["tfidf", "static"])
def served(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Proc, FakeUpstream, FakeUpstream]]:
    """The gateway serving a kNN artifact over TF-IDF, and over the static encoder
    distilled from MiniLM (the fast neural path: no torch, no ONNX at serving time)."""
    encoder = str(request.param)
    if encoder == "static":
        pytest.importorskip("onnxruntime")  # building the table runs MiniLM once
    logs: Path = tmp_path_factory.mktemp(f"learned-gateway-{encoder}")
    artifact = save_router(KNNRouter(encoder=encoder, k=5).fit(synthetic()), logs / "knn")
    select = {"router": str(artifact), "willingness_to_pay": 0.1, "batch_window_ms": 2}
    with running(FakeUpstream("small"), FakeUpstream("big")) as (small, big):
        config: dict[str, Any] = {
            "models": {
                "small": {"base_url": small.base_url, "input_price_per_mtok": 1.0,
                          "output_price_per_mtok": 1.0},
                "big": {"base_url": big.base_url, "input_price_per_mtok": 10.0,
                        "output_price_per_mtok": 10.0},
            },
            "decisions": [
                {"name": "learned", "when": True, "models": ["small", "big"], "select": select}
            ],
        }  # fmt: skip
        with gateway_running("gateway-learned", config, logs) as proc:
            yield proc, small, big


def prompt(i: int) -> str:
    if i % 2:
        return f"compute the integral of {10 + i} x squared plus {i % 7} dx please"
    return f"hello there friend number {1000 + i}, how are you today"


def chat(url: str, text: str) -> tuple[int, str, str]:
    """POST one chat completion: (status, x-polyroute-model, the answer's model)."""
    body = orjson.dumps({"model": "auto", "messages": [{"role": "user", "content": text}]})
    request = urllib.request.Request(
        url, data=body, headers={"content-type": "application/json"}, method="POST"
    )
    with _NO_PROXY.open(request, timeout=TIMEOUT_S) as resp:
        answer = orjson.loads(resp.read())
        return int(resp.status), resp.headers.get("x-polyroute-model", ""), answer["model"]


def test_concurrent_requests_are_each_routed_by_their_own_prompt(
    served: tuple[Proc, FakeUpstream, FakeUpstream],
) -> None:
    proc, small, big = served
    url = proc.url + "/v1/chat/completions"
    with ThreadPoolExecutor(CLIENTS) as pool:
        results = list(pool.map(lambda i: chat(url, prompt(i)), range(REQUESTS)))
    expected = ["big" if i % 2 else "small" for i in range(REQUESTS)]
    assert [status for status, _, _ in results] == [200] * REQUESTS
    assert [header for _, header, _ in results] == expected
    assert [model for _, _, model in results] == expected
    asked = {m["messages"][0]["content"] for m in big.requests}
    assert asked == {prompt(i) for i in range(1, REQUESTS, 2)}
    assert len(small.requests) == REQUESTS // 2
    assert proc.alive()


def test_the_dry_run_agrees_with_the_served_route(
    served: tuple[Proc, FakeUpstream, FakeUpstream],
) -> None:
    """``/v1/route`` (the sync path, one predict) picks what the batched path picked."""
    proc, _, _ = served
    for i in (1, 2):
        body = orjson.dumps({"model": "auto", "prompt": prompt(i)})
        request = urllib.request.Request(
            proc.url + "/v1/route", data=body, headers={"content-type": "application/json"}
        )
        with _NO_PROXY.open(request, timeout=TIMEOUT_S) as resp:
            trace = orjson.loads(resp.read())
        assert trace["candidates"][0] == ("big" if i % 2 else "small")


def test_the_gateway_serves_without_torch(
    served: tuple[Proc, FakeUpstream, FakeUpstream],
) -> None:
    """Whatever the encoder, the serving process never maps torch's library (it costs
    hundreds of MiB): read off the live process, after it has served."""
    proc, _, _ = served
    maps = Path(f"/proc/{proc.popen.pid}/maps")
    if not maps.exists():
        pytest.skip("no /proc on this system")
    mapped = maps.read_text()
    assert "libtorch" not in mapped
    assert proc.alive()
