"""Prometheus metrics: ``GET /metrics`` in the text exposition format.

:class:`Metrics` owns its own ``CollectorRegistry`` (never the global one, so several
apps in one process do not collide).  ``observe`` is called once per model request,
beside the access log line; it only adds to plain dicts (prometheus_client's own
counters take a lock per increment), and a collector builds the families at scrape
time.  Circuit state, in-flight counts and
the concurrency limit's refusals are read from the live objects at scrape time.

Series (all prefixed ``polyroute_``)::

    requests_total{endpoint,decision,model,status}    counter
    request_duration_seconds{endpoint,stream}          histogram
    overhead_seconds                                   histogram (time in polyroute)
    upstream_attempts_total{model,outcome}             counter
    retries_total{model}                               counter
    failovers_total                                    counter
    tokens_total{model,direction=input|output}         counter
    cost_usd_total{model}                              counter
    cache_total{result=hit|miss}                       counter
    circuit_state{model}          gauge: 0 closed, 1 half-open, 2 open
    in_flight{model}              gauge: upstream calls in flight per model
    requests_in_flight            gauge: requests in the gateway (``/v1/``)
    concurrency_refused_total     counter: 429s from the concurrency limit

Labels are bounded: model and decision values come from the config; anything else
(a client's unknown model name, say) is ``unknown``; an empty one is ``none``.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.exposition import generate_latest
from prometheus_client.metrics_core import Metric
from starlette.requests import Request as HttpRequest
from starlette.responses import Response
from starlette.routing import Route

from polyroute.server.limits import ConcurrencyLimit

if TYPE_CHECKING:
    from polyroute.backends.backend import Backend
    from polyroute.engine import Engine
    from polyroute.types import Trace

__all__ = ["Metrics", "find_concurrency_limit", "metrics_route"]

#: the classic text format (every name here is a legacy Prometheus name)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
CIRCUIT_VALUES = {"closed": 0.0, "half_open": 1.0, "open": 2.0}
LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
OVERHEAD_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)
_ENDPOINTS = ("chat", "completions")
_MAX_OUTCOME_CHARS = 40
_MAX_MIDDLEWARE_DEPTH = 32
_MAX_CACHED = 4096


def _labels(known: Iterable[str]) -> dict[str, str]:
    """A label map: each known name to itself, ``""`` to ``none``; look up the rest as
    ``unknown`` (``map.get(value, "unknown")``)."""
    table = {name: name for name in known}
    table[""] = "none"
    return table


class _LiveCollector:
    """Gauges read at scrape time: circuit state and in-flight per backend, gateway-wide
    in-flight and refusals (from the concurrency limit, when one is attached)."""

    def __init__(self, backends: Mapping[str, Backend]) -> None:
        self.backends = backends
        self.limit: Callable[[], ConcurrencyLimit | None] = lambda: None

    def collect(self) -> Iterator[Metric]:
        circuit = GaugeMetricFamily(
            "polyroute_circuit_state",
            "Circuit breaker state per model: 0 closed, 1 half-open, 2 open",
            labels=["model"],
        )
        in_flight = GaugeMetricFamily(
            "polyroute_in_flight", "Upstream calls in flight per model", labels=["model"]
        )
        for name, backend in self.backends.items():
            circuit.add_metric([name], CIRCUIT_VALUES.get(backend.breaker.state, 2.0))
            in_flight.add_metric([name], float(backend.stats.in_flight))
        yield circuit
        yield in_flight
        limit = self.limit()
        if limit is not None:
            yield GaugeMetricFamily(
                "polyroute_requests_in_flight",
                "Requests under /v1/ in the gateway now",
                value=float(limit.in_flight),
            )
            yield CounterMetricFamily(
                "polyroute_concurrency_refused",
                "Requests refused with 429 by server.max_concurrent_requests",
                value=float(limit.refused),
            )


class _Histogram:
    """Bucket counts and a sum, per label tuple; exported cumulatively at scrape time."""

    __slots__ = ("bounds", "series")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.series: dict[tuple[str, ...], list[float]] = {}

    def row(self, labels: tuple[str, ...]) -> list[float]:
        """The series' row: a count per bucket (``bisect_left(bounds, value)``), +Inf, sum."""
        row = self.series.get(labels)
        if row is None:
            row = self.series[labels] = [0.0] * (len(self.bounds) + 2)
        return row

    def family(self, name: str, doc: str, label_names: list[str]) -> HistogramMetricFamily:
        out = HistogramMetricFamily(name, doc, labels=label_names)
        for labels, row in self.series.items():
            running, buckets = 0.0, []
            for bound, count in zip((*self.bounds, math.inf), row[:-1], strict=True):
                running += count
                buckets.append(("+Inf" if bound == math.inf else repr(bound), running))
            out.add_metric(list(labels), buckets, row[-1])
        return out


class Metrics:
    """The gateway's Prometheus series over one private registry.

    ``observe`` runs on the event loop for every request, so it only adds to plain
    dicts (about a microsecond); a collector turns them into counter and histogram
    families when ``/metrics`` is scraped (``render``, on the same loop)."""

    def __init__(self, backends: Mapping[str, Backend], decisions: Iterable[str] = ()) -> None:
        self.registry = CollectorRegistry()
        self._models = _labels(backends)
        self._decisions = _labels(decisions)
        self._endpoints = _labels(_ENDPOINTS)
        self.live = _LiveCollector(backends)
        # counters: label tuple -> [value] (a one-item list, so a request adds to a row it
        # found once per kind of request, without looking the labels up again)
        self.requests: dict[tuple[str, ...], list[float]] = {}
        self.duration = _Histogram(LATENCY_BUCKETS)
        self.overhead = _Histogram(OVERHEAD_BUCKETS)
        self._overhead = self.overhead.row(())
        self.attempts: dict[tuple[str, ...], list[float]] = {}
        self.retries: dict[tuple[str, ...], list[float]] = {}
        self.failovers = 0.0
        self.tokens: dict[tuple[str, ...], list[float]] = {}
        self.cost: dict[tuple[str, ...], list[float]] = {}
        self.cache: dict[tuple[str, ...], list[float]] = {}
        # the rows per kind of request (bounded: raw names may repeat labels)
        self._rows: dict[tuple[str, str, str, int, bool], _Rows] = {}
        self.registry.register(_Accumulated(self))
        self.registry.register(self.live)

    @classmethod
    def for_engine(cls, engine: Engine) -> Metrics:
        """Series labelled with the engine's models and every decision name it can report."""
        decisions = {d.name for profile in engine.profiles.values() for d in profile}
        decisions.update(f"direct:{name}" for name in engine.backends)
        return cls(engine.backends, sorted(decisions))

    def _rows_for(self, key: tuple[str, str, str, int, bool]) -> _Rows:
        """The rows one kind of finished request adds to (made once per kind)."""
        model_name, decision_name, endpoint, status, stream = key
        model = self._models.get(model_name, "unknown")
        decision = self._decisions.get(decision_name, "unknown")
        point = self._endpoints.get(endpoint, "unknown")
        request_labels = (point, decision, model, str(status))
        requests = self.requests.setdefault(request_labels, [0.0])
        duration = self.duration.row((point, "true" if stream else "false"))
        if model in ("none", "unknown"):
            return requests, duration, None, None, None
        tokens_in = self.tokens.setdefault((model, "input"), [0.0])
        tokens_out = self.tokens.setdefault((model, "output"), [0.0])
        return requests, duration, tokens_in, tokens_out, self.cost.setdefault((model,), [0.0])

    def observe(
        self, trace: Trace, status: int, endpoint: str, stream: bool, latency_s: float
    ) -> None:
        """Count one finished request (call it once, where its access log line is written)."""
        key = (trace.model, trace.decision, endpoint, status, stream)
        rows = self._rows.get(key)
        if rows is None:
            rows = self._rows_for(key)
            if len(self._rows) < _MAX_CACHED:
                self._rows[key] = rows
        requests, duration, tokens_in, tokens_out, cost = rows
        requests[0] += 1
        duration[bisect_left(LATENCY_BUCKETS, latency_s)] += 1
        duration[-1] += latency_s
        overhead, seconds = self._overhead, trace.overhead_ms / 1000
        overhead[bisect_left(OVERHEAD_BUCKETS, seconds)] += 1
        overhead[-1] += seconds
        if trace.attempts:
            self._observe_attempts(trace)
        if tokens_in is not None and tokens_out is not None and cost is not None:
            tokens_in[0] += trace.input_tokens or 0
            tokens_out[0] += trace.output_tokens or 0
            spent = trace.cost_usd
            if spent and spent > 0:
                cost[0] += spent
        if trace.cache:
            found = self.cache.setdefault((trace.cache,), [0.0])
            found[0] += 1

    def _observe_attempts(self, trace: Trace) -> None:
        attempts = trace.attempts
        for a in attempts:
            model = self._models.get(a.model, "unknown")
            outcome = a.outcome if len(a.outcome) <= _MAX_OUTCOME_CHARS else "other"
            self.attempts.setdefault((model, outcome), [0.0])[0] += 1
            if a.retry > 0:
                self.retries.setdefault((model,), [0.0])[0] += 1
        if trace.model and attempts[0].model != trace.model:
            self.failovers += 1

    def render(self) -> tuple[bytes, str]:
        """The exposition text and its content type."""
        return generate_latest(self.registry), CONTENT_TYPE


_Row = list[float]
#: requests, duration, and (for a known model) input tokens, output tokens and cost
_Rows = tuple[_Row, _Row, _Row | None, _Row | None, _Row | None]


def _counter(
    name: str, doc: str, label_names: list[str], values: Mapping[tuple[str, ...], _Row]
) -> CounterMetricFamily:
    family = CounterMetricFamily(name, doc, labels=label_names)
    for labels, value in values.items():
        family.add_metric(list(labels), value[0])
    return family


class _Accumulated:
    """The per-request series, from :class:`Metrics`' dicts, at scrape time."""

    def __init__(self, metrics: Metrics) -> None:
        self.m = metrics

    def collect(self) -> Iterator[Metric]:
        m = self.m
        yield _counter(
            "polyroute_requests",
            "Model requests answered, by endpoint, decision, answering model and HTTP status",
            ["endpoint", "decision", "model", "status"],
            m.requests,
        )
        yield m.duration.family(
            "polyroute_request_duration_seconds",
            "Total request latency as the gateway saw it (a stream: until its last byte)",
            ["endpoint", "stream"],
        )
        yield m.overhead.family(
            "polyroute_overhead_seconds", "Time spent in polyroute itself, upstream excluded", []
        )
        yield _counter(
            "polyroute_upstream_attempts",
            "Upstream attempts by model and outcome (ok or the failure kind)",
            ["model", "outcome"],
            m.attempts,
        )
        yield _counter("polyroute_retries", "Retries of the same model", ["model"], m.retries)
        yield _counter(
            "polyroute_failovers",
            "Requests answered by a model other than the one tried first",
            [],
            {(): [m.failovers]},
        )
        yield _counter(
            "polyroute_tokens", "Tokens by model and direction", ["model", "direction"], m.tokens
        )
        yield _counter("polyroute_cost_usd", "Cost in US dollars by model", ["model"], m.cost)
        yield _counter("polyroute_cache", "Semantic cache lookups by result", ["result"], m.cache)


def find_concurrency_limit(app: Any) -> ConcurrencyLimit | None:
    """The app's :class:`ConcurrencyLimit` middleware instance, once Starlette has built its
    middleware stack (on the first request); ``None`` before that or without one."""
    node = getattr(app, "middleware_stack", None)
    for _ in range(_MAX_MIDDLEWARE_DEPTH):
        if node is None or isinstance(node, ConcurrencyLimit):
            return node
        node = getattr(node, "app", None)
    return None


def metrics_route(metrics: Metrics, path: str = "/metrics") -> Route:
    """``GET /metrics``; gateway-wide in-flight and refusals come from the serving app's
    concurrency limit, found at scrape time."""

    async def metrics_endpoint(http: HttpRequest) -> Response:
        app = http.scope.get("app")
        metrics.live.limit = lambda: find_concurrency_limit(app)
        body, content_type = metrics.render()
        return Response(body, media_type=content_type)

    return Route(path, metrics_endpoint, methods=["GET"])
