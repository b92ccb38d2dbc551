"""Plain data and extension-point contracts shared by the engine, server and workbench.

Data: :class:`Request` (one client call), :class:`Attempt` and :class:`Trace`
(what happened and why), :class:`Estimate` (a candidate's predicted quality
and cost).  Contracts: :class:`Signal`, :class:`Selector`, :class:`Provider`,
:class:`Plugin` and :class:`Store`.  Each has one registry (see
``polyroute.registry``) that maps config names to classes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol

if TYPE_CHECKING:
    from polyroute.backends.backend import Backend
    from polyroute.plugins.base import BasePlugin

JSON = dict[str, Any]
SignalValue = bool | int | float | str | frozenset[str] | None
Endpoint = Literal["chat", "completions"]
TextField = Literal["prompt", "text"]


def signals_json(values: Mapping[str, SignalValue]) -> JSON:
    """Signal values for JSON: a set (``pii``) as a sorted list, the rest as they are."""
    return {k: sorted(v) if isinstance(v, frozenset) else v for k, v in values.items()}


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = [p.get("text", "") for p in content if isinstance(p, dict)]
        return " ".join(p for p in parts if isinstance(p, str))
    return ""


def bound_text(text: str, max_chars: int) -> str:
    """``text`` if it has at most ``max_chars`` characters; else its first and last halves
    joined by a newline, ``max_chars`` characters in all.

    The instruction at the start and the question at the end of a long prompt both
    count; the middle is not read.  A word cut at either edge may read as a shorter
    word (``...prove`` from ``improve``).
    """
    if len(text) <= max_chars:
        return text
    budget = max(max_chars - 1, 0)  # one character for the newline
    head = (budget + 1) // 2
    tail = budget - head
    return f"{text[:head]}\n{text[len(text) - tail :]}"


@dataclass(slots=True, eq=False)
class Native:
    """The client's own wire body, for a backend that speaks the same protocol.

    Set by the gateway on a request that arrived in a protocol other than OpenAI's
    (``protocol``: ``"anthropic"`` for ``POST /v1/messages``).  A provider of that
    protocol sends ``body`` as it came (only ``model`` replaced) instead of translating
    the chat view, and leaves what its upstream answered here: ``answer`` beside the
    chat answer it returns (``chat``, the same object, so the wire can tell which answer
    is the client's), or the stream's ``events`` as they arrive.  A request whose body a
    plugin rewrote, or whose answer a plugin may edit, carries none (the engine drops it):
    the plugins work on the chat view, which is then translated back.
    """

    protocol: str
    body: JSON
    answer: JSON | None = None
    chat: JSON | None = None
    events: list[JSON] | None = None


class Request:
    """One client call as the engine sees it: the parsed body plus lazily derived text.

    ``body`` is the client's JSON object, forwarded upstream untouched except for
    ``model``.  ``headers`` has lower-case names.  ``raw_bytes`` is the size of the
    body as received (the gateway sets it; 0 for a request built in code).
    """

    __slots__ = (
        "_bounded",
        "_prompt",
        "_text",
        "body",
        "endpoint",
        "headers",
        "memo",
        "native",
        "prefer",
        "raw_bytes",
    )

    def __init__(
        self,
        body: JSON,
        endpoint: Endpoint = "chat",
        headers: Mapping[str, str] | None = None,
        raw_bytes: int = 0,
    ) -> None:
        self.body = body
        self.endpoint: Endpoint = endpoint
        self.headers: Mapping[str, str] = headers or {}
        self.raw_bytes = raw_bytes
        #: the per-request feature cache: the prompt's vector under each encoder, computed
        #: once and read by every neural signal and the semantic cache
        self.memo: dict[Any, Any] | None = None
        #: the model that answered this conversation's previous turn (a sticky decision
        #: tries it first)
        self.prefer: str | None = None
        #: the client's own wire body (see :class:`Native`); None for OpenAI's protocol
        self.native: Native | None = None
        self._prompt: str | None = None
        self._text: str | None = None
        self._bounded: dict[tuple[TextField, int], str] | None = None

    @classmethod
    def chat(cls, prompt: str, **fields: Any) -> Request:
        """Build a chat request with one user message (handy in the library and tests)."""
        body: JSON = {"model": "auto", "messages": [{"role": "user", "content": prompt}]}
        body.update(fields)
        return cls(body)

    @property
    def model(self) -> str:
        value = self.body.get("model")
        return value if isinstance(value, str) else "auto"

    @property
    def stream(self) -> bool:
        return self.body.get("stream") is True

    @property
    def messages(self) -> list[JSON]:
        msgs = self.body.get("messages")
        return [m for m in msgs if isinstance(m, dict)] if isinstance(msgs, list) else []

    @property
    def prompt(self) -> str:
        """The text routing looks at: the last user message (or the completion prompt)."""
        if self._prompt is None:
            if self.endpoint == "completions":
                p = self.body.get("prompt")
                self._prompt = p if isinstance(p, str) else " ".join(map(str, p or []))
            else:
                users = [m for m in self.messages if m.get("role") == "user"]
                self._prompt = _content_text(users[-1].get("content")) if users else ""
        return self._prompt

    @property
    def text(self) -> str:
        """All text the upstream will read (every message), for token estimates."""
        if self._text is None:
            if self.endpoint == "completions":
                self._text = self.prompt
            else:
                self._text = "\n".join(_content_text(m.get("content")) for m in self.messages)
        return self._text

    @property
    def user_text(self) -> str:
        """Every user message, joined by newlines (the completion prompt for completions)."""
        if self.endpoint == "completions":
            return self.prompt
        users = [m for m in self.messages if m.get("role") == "user"]
        return "\n".join(_content_text(m.get("content")) for m in users)

    @property
    def size(self) -> int:
        """How big routing sees this request: ``raw_bytes``, or else the length of ``text``."""
        return self.raw_bytes or len(self.text)

    def bounded(self, field: TextField, max_chars: int) -> str:
        """``prompt`` or ``text`` cut by :func:`bound_text`; cut once per request and kept,
        so many signals reading a huge prompt share one bounded copy."""
        text = self.prompt if field == "prompt" else self.text
        if len(text) <= max_chars:
            return text
        if self._bounded is None:
            self._bounded = {}
        key = (field, max_chars)
        cut = self._bounded.get(key)
        if cut is None:
            cut = self._bounded[key] = bound_text(text, max_chars)
        return cut


@dataclass(slots=True)
class Estimate:
    """What a selector believed about one candidate when it chose."""

    model: str
    cost_usd: float
    quality: float | None = None
    latency_ms: float | None = None

    def as_dict(self) -> JSON:
        """The fields that are set (the trace's JSON form)."""
        out: JSON = {"model": self.model, "cost_usd": self.cost_usd}
        if self.quality is not None:
            out["quality"] = self.quality
        if self.latency_ms is not None:
            out["latency_ms"] = self.latency_ms
        return out


@dataclass(slots=True)
class Attempt:
    """One try of one backend: ``outcome`` is ``ok`` or the failure kind."""

    model: str
    outcome: str
    latency_ms: float
    status: int | None = None
    retry: int = 0
    detail: str = ""

    def as_dict(self) -> JSON:
        return {
            "model": self.model,
            "outcome": self.outcome,
            "latency_ms": round(self.latency_ms, 3),
            "status": self.status,
            "retry": self.retry,
            "detail": self.detail,
        }


@dataclass(slots=True)
class Trace:
    """The explanation of one routing decision and its outcome."""

    trace_id: str
    requested_model: str = "auto"
    decision: str = ""
    signals: dict[str, SignalValue] = field(default_factory=dict)
    candidates: list[str] = field(default_factory=list)
    estimates: list[Estimate] = field(default_factory=list)
    attempts: list[Attempt] = field(default_factory=list)
    model: str = ""
    outcome: str = "pending"
    estimated_cost_usd: float = 0.0
    overhead_ms: float = 0.0
    upstream_ms: float = 0.0
    client: str = ""  # the name of the gateway key the request presented
    #: the client's ``x-request-id`` (when it is 1-128 visible ASCII characters), else
    #: the trace id; echoed back in ``x-request-id``
    request_id: str = ""
    #: what the plugins did: refused, rerouted, redacted, answered from the cache...
    events: list[JSON] = field(default_factory=list)
    #: "hit" or "miss" when a semantic cache looked this request up ("" otherwise)
    cache: str = ""
    #: what the request cost (``polyroute.accounting``): tokens the upstream reported,
    #: the cost in USD, and where it came from: usage, estimate or cache
    input_tokens: int | None = None
    output_tokens: int | None = None
    cost_usd: float = 0.0
    cost_source: str = ""
    #: the plan that ran when it was not a single model (``cascade``, ...), and how many
    #: model calls it made
    plan: str = ""
    plan_calls: int = 0
    #: the answer's (first choice's) finish reason, when known (``length``: cut short)
    finish_reason: str = ""
    #: a steering budget's multiplier of the willingness to pay (``polyroute.budget``),
    #: and the willingness to pay a cost-weighing selector used
    budget_scale: float = 1.0
    willingness_to_pay: float | None = None

    def as_dict(self) -> JSON:
        return {
            "trace_id": self.trace_id,
            "client": self.client,
            "requested_model": self.requested_model,
            "decision": self.decision,
            "signals": signals_json(self.signals),
            "candidates": self.candidates,
            "estimates": [e.as_dict() for e in self.estimates],
            "attempts": [a.as_dict() for a in self.attempts],
            "plugins": self.events,
            "cache": self.cache,
            "model": self.model,
            "outcome": self.outcome,
            "estimated_cost_usd": self.estimated_cost_usd,
            "usage": {"input_tokens": self.input_tokens, "output_tokens": self.output_tokens},
            "cost_usd": self.cost_usd,
            "cost_source": self.cost_source,
            "willingness_to_pay": self.willingness_to_pay,
            "plan": self.plan or "single",
            "plan_calls": self.plan_calls,
            "overhead_ms": round(self.overhead_ms, 3),
            "upstream_ms": round(self.upstream_ms, 3),
        }


# --------------------------------------------------------------------------- contracts


class SignalSource(Protocol):
    """Read access to a request's signals; each is computed at most once, on first read."""

    def get(self, name: str) -> SignalValue: ...

    def fires(self, name: str) -> bool:
        """Whether the signal counts as true in a bare rule (truthy, or over its threshold)."""
        ...


class Signal(Protocol):
    """Turns a request into one fact.  Built from its config block; must be cheap or lazy."""

    name: str

    def compute(self, request: Request) -> SignalValue: ...


class Selector(Protocol):
    """Orders a decision's candidates: the first is tried first, the rest are the failover order.

    A selector may record what it believed in ``trace.estimates``.  Learned routers
    plug in here through an adapter (``polyroute.selectors.learned``).  A
    selector whose ``order`` is CPU-heavy sets a class attribute ``blocking = True``
    and the engine then runs it in a worker thread, off the event loop.  A selector
    may also define ``async def aorder(candidates, request, trace)`` with the same
    contract: the engine's event-loop path awaits it instead of ``order`` (the learned
    selector batches concurrent requests there).
    """

    def order(
        self, candidates: Sequence[Backend], request: Request, trace: Trace
    ) -> list[Backend]: ...


class UpstreamStream(Protocol):
    """An open upstream stream of OpenAI ``chat.completion.chunk`` objects.

    Iteration raises ``UpstreamError`` if the upstream stops before its
    end-of-stream marker, so a cut stream is never mistaken for a complete one.
    """

    def __aiter__(self) -> AsyncIterator[JSON]: ...

    async def aclose(self) -> None: ...


class Provider(Protocol):
    """Talks one wire protocol to one upstream; all bodies in and out are OpenAI-shaped.

    Built as ``cls(base_url, api_key=..., headers=..., **options)`` (a model's
    ``options:`` are its extra keyword arguments)."""

    def __init__(
        self,
        base_url: str,
        api_key: str | None = ...,
        headers: Mapping[str, str] | None = ...,
        **options: Any,
    ) -> None: ...

    async def complete(self, request: Request, upstream_model: str, timeout_s: float) -> JSON: ...

    async def open_stream(
        self, request: Request, upstream_model: str, timeout_s: float, idle_timeout_s: float
    ) -> UpstreamStream: ...

    async def aclose(self) -> None: ...


class Store(Protocol):
    """Shared state behind one interface (memory by default; Redis for replicas)."""

    async def get(self, key: str) -> bytes | None: ...

    async def set(self, key: str, value: bytes, ttl_s: float | None = None) -> None: ...

    async def incr(self, key: str, amount: float = 1.0) -> float: ...

    async def aclose(self) -> None: ...


@dataclass(frozen=True, slots=True)
class Decision:
    """A compiled decision rule: when ``predicate`` holds, ``selector`` orders ``candidates``."""

    name: str
    priority: int
    predicate: Callable[[SignalSource], bool]
    candidates: tuple[Backend, ...]
    selector: Selector
    plugins: tuple[BasePlugin, ...] = ()
    #: the signals its rule and its plugins read
    signals: tuple[str, ...] = ()
    #: a continued conversation stays on the model that answered it (``session: sticky``)
    sticky: bool = False
    #: how the chosen models answer: ``single`` (failover), or a plan kind with its
    #: built spec (``polyroute.plans``)
    plan: str = "single"
    plan_spec: Any = None
    #: the budgets its requests count against (the global one, then its own)
    budgets: tuple[Any, ...] = ()
