from __future__ import annotations

from collections import Counter
from typing import Any

from polyroute.backends import Backend, CircuitBreaker
from polyroute.selectors import SELECTORS
from polyroute.types import Request, Trace


class NoProvider:
    async def aclose(self) -> None: ...


def backend(name: str, price: float = 1.0, **kw: Any) -> Backend:
    return Backend(name, name, NoProvider(), price, price, **kw)  # type: ignore[arg-type]


def order(selector: str, candidates: list[Backend], **options: Any) -> list[str]:
    sel = SELECTORS.get(selector)(**options)
    return [b.name for b in sel.order(candidates, Request.chat("hello " * 50), Trace("t"))]


def test_static_keeps_order_but_demotes_open_circuits() -> None:
    a, b, c = backend("a"), backend("b"), backend("c")
    assert order("static", [a, b, c]) == ["a", "b", "c"]
    a.breaker = CircuitBreaker(failure_threshold=1)
    a.breaker.record_failure()
    assert order("static", [a, b, c]) == ["b", "c", "a"]


def test_cheapest_uses_prices_and_records_estimates() -> None:
    sel = SELECTORS.get("cheapest")()
    trace = Trace("t")
    ordered = sel.order([backend("big", 10), backend("tiny", 0.1)], Request.chat("x" * 400), trace)
    assert [b.name for b in ordered] == ["tiny", "big"]
    assert trace.estimates[0].cost_usd == (100 * 10 + 256 * 10) / 1e6


def test_cheapest_counts_max_tokens() -> None:
    a = backend("a")
    assert a.estimate_cost(Request.chat("x" * 4, max_tokens=10)) == (1 + 10) / 1e6


def test_weighted_follows_weights() -> None:
    heavy, light = backend("heavy", weight=9), backend("light", weight=1)
    firsts = Counter(order("weighted", [heavy, light], seed=i)[0] for i in range(400))
    assert 320 < firsts["heavy"] < 390
    assert order("weighted", [heavy, light], weights={"heavy": 0, "light": 1}, seed=1)[0] == "light"


def test_fastest_prefers_low_latency_ewma() -> None:
    slow, fast = backend("slow"), backend("fast")
    slow.stats.observe_latency(200)
    fast.stats.observe_latency(20)
    assert all(order("fastest", [slow, fast], seed=i)[0] == "fast" for i in range(20))


def test_fastest_power_of_two_spreads_load() -> None:
    bs = [backend(f"b{i}") for i in range(4)]
    for i, b in enumerate(bs):
        b.stats.observe_latency(10 + i)
    firsts = Counter(order("fastest", bs, seed=i)[0] for i in range(200))
    assert firsts["b0"] > firsts["b1"] > 0 and "b3" not in firsts


def test_least_busy() -> None:
    a, b = backend("a"), backend("b")
    a.stats.in_flight = 3
    assert order("least-busy", [a, b]) == ["b", "a"]


def test_breaker_opens_half_opens_and_recovers() -> None:
    now = [0.0]
    br = CircuitBreaker(failure_threshold=2, reset_timeout_s=10, clock=lambda: now[0])
    br.record_failure()
    assert br.state == "closed"
    br.record_failure()
    assert br.state == "open" and not br.acquire()
    now[0] = 11
    assert br.state == "half_open"
    assert br.acquire() and not br.acquire()  # exactly one probe
    br.record_failure()
    assert br.state == "open"
    now[0] = 22
    assert br.acquire()
    br.record_success()
    assert br.state == "closed" and br.acquire()
