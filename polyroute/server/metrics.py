"""Prometheus metrics: ``GET /metrics`` in the text exposition format.

:class:`Metrics` owns its own ``CollectorRegistry`` (never the global one, so several
apps in one process do not collide).  ``observe`` is called once per model request,
beside the access log line; it costs a few dict lookups and counter increments
(labelled children are cached per label tuple).  Circuit state, in-flight counts and
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

from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
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


class Metrics:
    """The gateway's Prometheus series over one private registry."""

    def __init__(self, backends: Mapping[str, Backend], decisions: Iterable[str] = ()) -> None:
        self.registry = CollectorRegistry()
        self._models = _labels(backends)
        self._decisions = _labels(decisions)
        self._endpoints = _labels(_ENDPOINTS)
        self.live = _LiveCollector(backends)
        r = self.registry
        self._requests = Counter(
            "polyroute_requests",
            "Model requests answered, by endpoint, decision, answering model and HTTP status",
            ["endpoint", "decision", "model", "status"],
            registry=r,
        )
        self._duration = Histogram(
            "polyroute_request_duration_seconds",
            "Total request latency as the gateway saw it (a stream: until its last byte)",
            ["endpoint", "stream"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self._overhead = Histogram(
            "polyroute_overhead_seconds",
            "Time spent in polyroute itself, upstream excluded",
            buckets=OVERHEAD_BUCKETS,
            registry=r,
        )
        self._attempts = Counter(
            "polyroute_upstream_attempts",
            "Upstream attempts by model and outcome (ok or the failure kind)",
            ["model", "outcome"],
            registry=r,
        )
        self._retries = Counter(
            "polyroute_retries", "Retries of the same model", ["model"], registry=r
        )
        self._failovers = Counter(
            "polyroute_failovers",
            "Requests answered by a model other than the one tried first",
            registry=r,
        )
        self._tokens = Counter(
            "polyroute_tokens", "Tokens by model and direction", ["model", "direction"], registry=r
        )
        self._cost = Counter(
            "polyroute_cost_usd", "Cost in US dollars by model", ["model"], registry=r
        )
        self._cache = Counter(
            "polyroute_cache", "Semantic cache lookups by result", ["result"], registry=r
        )
        r.register(self.live)
        # labelled children, cached per label tuple: observe() skips prometheus_client's
        # label validation after the first request of each combination
        self._children: dict[tuple[Any, ...], Any] = {}
        self._per_request: dict[tuple[str, str, str, int, bool], tuple[Any, Any, Any]] = {}

    @classmethod
    def for_engine(cls, engine: Engine) -> Metrics:
        """Series labelled with the engine's models and every decision name it can report."""
        decisions = {d.name for profile in engine.profiles.values() for d in profile}
        decisions.update(f"direct:{name}" for name in engine.backends)
        return cls(engine.backends, sorted(decisions))

    def _child(self, metric: Any, *labels: str) -> Any:
        key = (id(metric), *labels)
        child = self._children.get(key)
        if child is None:
            child = metric.labels(*labels)
            if len(self._children) < _MAX_CACHED:
                self._children[key] = child
        return child

    def observe(
        self, trace: Trace, status: int, endpoint: str, stream: bool, latency_s: float
    ) -> None:
        """Count one finished request (call it once, where its access log line is written)."""
        key = (trace.model, trace.decision, endpoint, status, stream)
        children = self._per_request.get(key)
        if children is None:
            children = self._request_children(key)
            if len(self._per_request) < _MAX_CACHED:  # raw names may repeat labels: bounded
                self._per_request[key] = children
        requests, duration, usage = children
        requests.inc()
        duration.observe(latency_s)
        self._overhead.observe(trace.overhead_ms / 1000)
        if trace.attempts:
            self._observe_attempts(trace)
        if usage is not None:
            tokens_in, tokens_out, cost_usd = usage
            count = getattr(trace, "input_tokens", 0) or 0
            if count > 0:
                tokens_in.inc(count)
            count = getattr(trace, "output_tokens", 0) or 0
            if count > 0:
                tokens_out.inc(count)
            cost = getattr(trace, "cost_usd", None)
            if cost is not None and cost > 0:
                cost_usd.inc(cost)
        cache = trace.cache
        if cache in ("hit", "miss"):
            self._child(self._cache, cache).inc()

    def _request_children(self, key: tuple[str, str, str, int, bool]) -> tuple[Any, Any, Any]:
        """The children one kind of request touches, looked up once per label tuple."""
        model_name, decision_name, endpoint, status, stream = key
        model = self._models.get(model_name, "unknown")
        decision = self._decisions.get(decision_name, "unknown")
        point = self._endpoints.get(endpoint, "unknown")
        requests = self._requests.labels(point, decision, model, str(status))
        duration = self._duration.labels(point, "true" if stream else "false")
        usage = None
        if model not in ("none", "unknown"):
            usage = (
                self._tokens.labels(model, "input"),
                self._tokens.labels(model, "output"),
                self._cost.labels(model),
            )
        return requests, duration, usage

    def _observe_attempts(self, trace: Trace) -> None:
        attempts = trace.attempts
        for a in attempts:
            model = self._models.get(a.model, "unknown")
            outcome = a.outcome if len(a.outcome) <= _MAX_OUTCOME_CHARS else "other"
            self._child(self._attempts, model, outcome).inc()
            if a.retry > 0:
                self._child(self._retries, model).inc()
        if trace.model and attempts[0].model != trace.model:
            self._failovers.inc()

    def render(self) -> tuple[bytes, str]:
        """The exposition text and its content type."""
        return generate_latest(self.registry), CONTENT_TYPE


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
