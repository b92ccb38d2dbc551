"""The gateway adapter: a trained artifact orders a decision's candidates by utility."""

from __future__ import annotations

import asyncio
import math
from pathlib import Path
from typing import Any

import pytest
from routers.learned_fixtures import synthetic

from polyroute import Engine, parse_config
from polyroute.backends import CircuitBreaker
from polyroute.backends.backend import Backend
from polyroute.errors import ConfigError
from polyroute.routers.artifact import save_router
from polyroute.routers.learned.knn import KNNRouter
from polyroute.selectors.learned import LearnedSelector
from polyroute.types import Request, Trace

MATHS = "compute the integral of 31 x squared plus 5 dx please"
HELLO = "hello there friend number 12, how are you today"


@pytest.fixture(scope="module")
def artifact(tmp_path_factory: pytest.TempPathFactory) -> Path:
    router = KNNRouter(encoder="tfidf", k=5).fit(synthetic())
    table = [{"w": 1e-9, "cost_fraction": 0.1}, {"w": 1.0, "cost_fraction": 0.9}]
    return save_router(router, tmp_path_factory.mktemp("sel") / "knn", {"calibration": table})


def backend(name: str, price: float) -> Backend:
    provider: Any = None  # never called: ordering does no I/O
    return Backend(name, name, provider, input_price_per_mtok=price, output_price_per_mtok=price)


POOL = [backend("other", 0.5), backend("big", 10.0), backend("small", 1.0)]


def order(selector: LearnedSelector, prompt: str) -> tuple[list[str], Trace]:
    trace = Trace("t")
    ordered = selector.order(POOL, Request.chat(prompt), trace)
    return [b.name for b in ordered], trace


def test_pure_quality_puts_the_model_that_solves_it_first(artifact: Path) -> None:
    sel = LearnedSelector(str(artifact))
    assert sel.w == math.inf
    names, trace = order(sel, MATHS)
    assert names == ["big", "small", "other"]  # unknown to the artifact: last
    est = {e.model: e for e in trace.estimates}
    assert set(est) == {"other", "big", "small"}
    assert est["big"].quality is not None and est["big"].quality > est["small"].quality  # type: ignore[operator]
    assert est["other"].quality is None
    assert est["big"].cost_usd > est["small"].cost_usd > 0


def test_willingness_to_pay_trades_quality_for_cost(artifact: Path) -> None:
    names, _ = order(LearnedSelector(str(artifact), willingness_to_pay=0.1), HELLO)
    assert names[0] == "small"  # both solve greetings; small is cheaper
    names, _ = order(LearnedSelector(str(artifact), willingness_to_pay=1e-9), MATHS)
    assert names[0] == "small"  # money is everything


def test_max_cost_moves_expensive_candidates_behind(artifact: Path) -> None:
    names, _ = order(LearnedSelector(str(artifact), max_cost_usd=1e-3), MATHS)
    assert names == ["small", "big", "other"]


def test_target_cost_fraction_uses_the_calibration_table(artifact: Path) -> None:
    assert LearnedSelector(str(artifact), target_cost_fraction=0.5).w == 1e-9
    assert LearnedSelector(str(artifact), target_cost_fraction=0.95).w == 1.0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"willingness_to_pay": 0}, "willingness_to_pay"), ({"target_cost_fraction": -1}, "target")],
)
def test_bad_options(artifact: Path, kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        LearnedSelector(str(artifact), **kwargs)  # type: ignore[arg-type]


def test_missing_or_invalid_artifact_names_the_path(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=str(tmp_path / "gone")):
        LearnedSelector(str(tmp_path / "gone"))
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "manifest.json").write_text("{")
    with pytest.raises(ConfigError, match="junk"):
        LearnedSelector(str(tmp_path / "junk"))


def test_open_circuits_go_behind(artifact: Path) -> None:
    big, small = backend("big", 10.0), backend("small", 1.0)
    big.breaker = CircuitBreaker(failure_threshold=1)
    big.breaker.record_failure()
    ordered = LearnedSelector(str(artifact)).order([big, small], Request.chat(MATHS), Trace("t"))
    assert [b.name for b in ordered] == ["small", "big"]


def test_engine_routes_with_a_trained_router(artifact: Path, tmp_path: Path) -> None:
    models = {
        name: {
            "base_url": "http://127.0.0.1:9/v1",
            "input_price_per_mtok": p,
            "output_price_per_mtok": p,
        }
        for name, p in (("small", 1.0), ("big", 10.0))
    }
    raw = {
        "models": models,
        "decisions": [
            {
                "name": "learned",
                "when": True,
                "models": ["small", "big"],
                "select": {"router": str(artifact)},
            }
        ],
    }
    engine = Engine(parse_config(raw, base_dir=str(tmp_path)))
    trace = engine.route(Request.chat(MATHS))
    assert trace.candidates[0] == "big"
    assert {e.model for e in trace.estimates} == {"small", "big"}
    assert all(e.quality is not None for e in trace.estimates)


async def test_the_gateway_path_batches_and_agrees_with_the_sync_path(artifact: Path) -> None:
    """``aorder`` (what the engine awaits) orders and estimates like ``order``, request by
    request, while concurrent requests share predict calls."""
    sel = LearnedSelector(str(artifact), willingness_to_pay=0.1)
    calls: list[int] = []
    predict = sel._batcher.predict_batch
    sel._batcher.predict_batch = lambda prompts: calls.append(len(prompts)) or predict(prompts)
    prompts = [MATHS, HELLO, "what is 2 + 2", "write a poem about spring"] * 4
    traces = [Trace(str(i)) for i in range(len(prompts))]
    async with asyncio.timeout(30):
        got = await asyncio.gather(
            *(sel.aorder(POOL, Request.chat(p), t) for p, t in zip(prompts, traces, strict=True))
        )
    for prompt, ordered, trace in zip(prompts, got, traces, strict=True):
        names, expected = order(sel, prompt)
        assert [b.name for b in ordered] == names
        assert [(e.model, e.cost_usd) for e in trace.estimates] == [
            (e.model, e.cost_usd) for e in expected.estimates
        ]
        got_q = [e.quality for e in trace.estimates]
        assert got_q == pytest.approx([e.quality for e in expected.estimates], abs=1e-6)
    assert sum(calls) == len(prompts) and len(calls) < len(prompts)


@pytest.mark.parametrize(
    "options", [{"batch_window_ms": -1}, {"max_batch": 0}, {"max_batch": 65}, {"batch_workers": 0}]
)
def test_bad_batching_options(artifact: Path, options: dict[str, float]) -> None:
    with pytest.raises(ConfigError, match="batch"):
        LearnedSelector(str(artifact), **options)  # type: ignore[arg-type]
