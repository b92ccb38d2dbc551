"""A huge prompt does not stall the gateway: routing it is bounded and runs off the event loop.

A real ``polyroute serve`` with 1,000 keyword rules (each its own signal, none
matching, a default decision last) gets a ~3.9 MB prompt while another thread
polls ``GET /healthz`` every 20 ms.  Before routing was bounded and moved to a
worker thread, the event loop ran every keyword search over the whole prompt
and ``/healthz`` waited for all of them (measured: ~40 s).
"""

from __future__ import annotations

import random
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp import web
from fakes import FakeUpstream, gateway_config, running
from procs import (
    Proc,
    start_gateway,
)

RULES = 1000
PROMPT_CHARS = 3_900_000
MAX_BODY_BYTES = 8 * 1024 * 1024
HEALTH_BOUND_S = 0.3  # the worst /healthz latency allowed while the prompt is routed
HEALTH_TIMEOUT_S = 5.0
POLL_EVERY_S = 0.02
PROMPT_TIMEOUT_S = 60.0
WORDS = ("alpha", "beta", "gamma", "delta", "routing", "model", "answer", "question", "the")

pytestmark = pytest.mark.slow

_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


@dataclass
class DrainingUpstream(FakeUpstream):
    """Answers every chat call; reads the body as a stream (aiohttp's ``json()`` stops at 1 MiB)."""

    sizes: list[int] = field(default_factory=list)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        size = 0
        async for chunk in request.content.iter_any():
            size += len(chunk)
        self.sizes.append(size)
        message = {"role": "assistant", "content": f"ok ({self.name})"}
        return web.json_response(
            {
                "id": "chatcmpl-1",
                "object": "chat.completion",
                "created": 1,
                "model": "m",
                "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
            }
        )


def many_rules_config(small: str, large: str) -> dict[str, Any]:
    config = gateway_config(small, large, max_body_bytes=MAX_BODY_BYTES, deadline_s=60)
    config["server"]["log_requests"] = False
    config["signals"] = {
        f"kw{i}": {"type": "keyword", "any": [f"zqx{i}word"]} for i in range(RULES)
    }
    config["decisions"] = [
        *({"name": f"rule{i}", "when": f"kw{i}", "models": ["large"]} for i in range(RULES)),
        {"name": "default", "when": True, "models": ["small"]},
    ]
    return config


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Proc, DrainingUpstream]]:
    logs: Path = tmp_path_factory.mktemp("routing-stall")
    with running(DrainingUpstream("small"), DrainingUpstream("large")) as (small, large):
        proc = start_gateway("gateway", many_rules_config(small.base_url, large.base_url), logs)
        try:
            yield proc, small  # type: ignore[misc]
        finally:
            proc.stop()


def huge_prompt() -> bytes:
    rng = random.Random(7)
    words = " ".join(rng.choice(WORDS) for _ in range(PROMPT_CHARS // 5))
    text = f"please summarise this. {words[:PROMPT_CHARS]} what is the answer?"
    return orjson.dumps({"model": "auto", "messages": [{"role": "user", "content": text}]})


@dataclass
class Outcome:
    status: int = 0
    decision: str = ""
    error: str = ""
    done: threading.Event = field(default_factory=threading.Event)


def post(url: str, data: bytes, outcome: Outcome) -> None:
    request = urllib.request.Request(
        url, data=data, headers={"content-type": "application/json"}, method="POST"
    )
    try:
        with _NO_PROXY.open(request, timeout=PROMPT_TIMEOUT_S) as resp:
            outcome.status = int(resp.status)
            outcome.decision = resp.headers.get("x-polyroute-decision", "")
            resp.read()
    except urllib.error.HTTPError as exc:
        outcome.status = int(exc.code)
        outcome.error = exc.read().decode(errors="replace")[:300]
        exc.close()
    except OSError as exc:
        outcome.error = repr(exc)
    finally:
        outcome.done.set()


def poll_health(url: str, until: threading.Event, latencies: list[float]) -> None:
    """GET /healthz every POLL_EVERY_S until ``until``; a failed or timed-out poll counts as
    HEALTH_TIMEOUT_S.  Stops early once one poll is over the bound (the test has failed)."""
    while not until.is_set():
        started = time.perf_counter()
        try:
            with _NO_PROXY.open(url, timeout=HEALTH_TIMEOUT_S) as resp:
                resp.read()
            latencies.append(time.perf_counter() - started)
        except OSError:
            latencies.append(HEALTH_TIMEOUT_S)
        if latencies[-1] > HEALTH_BOUND_S:
            return
        time.sleep(POLL_EVERY_S)


def test_huge_prompt_with_many_rules_does_not_stall_healthz(
    gateway: tuple[Proc, DrainingUpstream],
) -> None:
    proc, small = gateway
    data = huge_prompt()
    assert len(data) > 3_800_000
    outcome = Outcome()
    latencies: list[float] = []
    poller = threading.Thread(
        target=poll_health, args=(proc.url + "/healthz", outcome.done, latencies), daemon=True
    )
    poster = threading.Thread(
        target=post, args=(proc.url + "/v1/chat/completions", data, outcome), daemon=True
    )
    poller.start()
    time.sleep(0.1)  # a few polls before the prompt arrives
    started = time.perf_counter()
    poster.start()
    poller.join(PROMPT_TIMEOUT_S)  # ends with the prompt's answer, or at the first stall
    elapsed = time.perf_counter() - started
    worst = max(latencies, default=0.0)
    print(
        f"\nprompt {len(data)} bytes: {elapsed:.2f} s, status {outcome.status}; "
        f"{len(latencies)} /healthz polls, worst {worst * 1000:.1f} ms"
    )
    assert worst < HEALTH_BOUND_S, (
        f"/healthz stalled {worst * 1000:.0f} ms while a {len(data)}-byte prompt was routed "
        f"(bound {HEALTH_BOUND_S * 1000:.0f} ms)"
    )
    assert outcome.done.wait(PROMPT_TIMEOUT_S), "the prompt got no answer in time"
    assert outcome.status == 200, (outcome.status, outcome.error)
    assert outcome.decision == "default"
    assert small.sizes and small.sizes[-1] > 3_800_000  # forwarded whole, answered upstream
    assert len(latencies) >= 5
    assert proc.alive()
