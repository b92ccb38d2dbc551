"""The ``similarity`` signal: semantic-router style routes by example utterances."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from polyroute.config import load_config
from polyroute.engine import Engine
from polyroute.errors import ConfigError
from polyroute.signals import similarity
from polyroute.types import Request

pytest.importorskip("onnxruntime")  # the static table is distilled from MiniLM once

BILLING = [
    "I was charged twice for my subscription",
    "how do I get a refund for my order",
    "update the credit card on my account",
    "why is my invoice higher this month",
]


def config_text(signal: dict[str, Any]) -> str:
    import json

    return json.dumps(
        {
            "models": {
                "small": {"base_url": "http://127.0.0.1:9/v1"},
                "support": {"base_url": "http://127.0.0.1:9/v1"},
            },
            "signals": {"billing": {"type": "similarity", **signal}},
            "decisions": [
                {"name": "billing", "priority": 10, "when": "billing", "models": ["support"]},
                {"name": "default", "when": True, "models": ["small"]},
            ],
        }
    )


def engine(tmp_path: Path, **signal: Any) -> Engine:
    path = tmp_path / "polyroute.yaml"
    path.write_text(config_text({"examples": BILLING, **signal}))
    return Engine(load_config(path))


def test_paraphrases_fire_and_other_requests_do_not(tmp_path: Path) -> None:
    e = engine(tmp_path)
    e.warmup()
    signal = e.signals["billing"]
    assert isinstance(signal, similarity.SimilaritySignal)
    assert 0.0 < signal.threshold < 1.0, "calibrated on the background prompts"
    for text in ("I need a refund, you billed me two times",
                 "my invoice looks wrong, can you check the charges?"):  # fmt: skip
        trace = e.route(Request.chat(text))
        assert trace.decision == "billing", (text, trace.signals)
    for text in ("Solve 3x + 5 = 20", "Who wrote Hamlet?"):
        trace = e.route(Request.chat(text))
        assert trace.decision == "default", (text, trace.signals)
        assert isinstance(trace.signals["billing"], float)
    exact = e.route(Request.chat(BILLING[0])).signals["billing"]
    assert exact == pytest.approx(1.0, abs=1e-4)


def test_the_calibrated_threshold_lets_few_background_prompts_fire(tmp_path: Path) -> None:
    e = engine(tmp_path)
    e.warmup()
    signal = e.signals["billing"]
    background = similarity.background_prompts()[:200]
    fired = sum(signal.fires(signal.compute(Request.chat(p))) for p in background)
    assert fired <= 0.05 * len(background)


def test_an_explicit_threshold_wins(tmp_path: Path) -> None:
    e = engine(tmp_path, threshold=0.99)
    trace = e.route(Request.chat("I need a refund, you billed me two times"))
    assert trace.decision == "default"
    signal = e.signals["billing"]
    assert isinstance(signal, similarity.SimilaritySignal) and signal.threshold == 0.99


@pytest.mark.parametrize(
    ("signal", "expected"),
    [
        ({"examples": []}, "signals.billing"),
        ({"examples": ["fine", "  "]}, "signals.billing.examples[1]"),
        ({"examples": ["fine"], "threshold": 2}, "threshold"),
        ({"examples": ["fine"], "encoder": "bert"}, "encoder"),
        ({"examples": ["fine"], "exampels": ["typo"]}, "exampels"),
    ],
)
def test_bad_options_name_the_field(tmp_path: Path, signal: dict[str, Any], expected: str) -> None:
    path = tmp_path / "polyroute.yaml"
    path.write_text(config_text(signal))
    with pytest.raises(ConfigError, match=expected.replace("[", r"\[").replace("]", r"\]")):
        Engine(load_config(path))


def test_a_failing_encoder_is_unknown_not_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*_: Any, **__: Any) -> Any:
        raise RuntimeError("no encoder here")

    monkeypatch.setattr(similarity, "serving_encoder", broken)
    e = engine(tmp_path)
    trace = e.route(Request.chat("I was charged twice for my subscription"))
    assert trace.signals["billing"] is None
    assert trace.decision == "default"


@pytest.mark.parametrize(("encoder", "off_loop"), [("static", False), ("minilm", True)])
def test_a_transformer_signal_is_computed_off_the_event_loop(
    tmp_path: Path, encoder: str, off_loop: bool
) -> None:
    """MiniLM costs ~12 ms a prompt: with such a signal the engine decides in a worker
    thread; the static encoder (~0.1 ms) stays on the loop (the hot path)."""
    import asyncio
    import threading

    from polyroute.types import Trace

    e = engine(tmp_path, encoder=encoder, threshold=0.5)
    seen: list[threading.Thread] = []

    def compute(request: Request) -> float:
        seen.append(threading.current_thread())
        return 0.9

    e.signals["billing"].compute = compute  # type: ignore[method-assign]
    plan = asyncio.run(e.aplan(Request.chat("refund me"), Trace("t")))
    assert plan.decision.name == "billing"
    assert (seen[0] is not threading.main_thread()) is off_loop
