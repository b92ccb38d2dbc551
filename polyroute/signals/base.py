"""The base class of signals and the per-request lazy signal cache."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from polyroute.options import Options, validate_options
from polyroute.types import Request, SignalValue, TextField

TEXT_MAX_CHARS = 256 * 1024  # the default of server.signal_text_max_chars


class SignalOptions(Options):
    pass


class BaseSignal:
    """Subclasses set ``Options`` (a pydantic model of their config keys) and ``compute``.

    A signal that scans the prompt reads it through :meth:`read_text`: at most
    ``text_max_chars`` characters (``server.signal_text_max_chars``, set by the
    engine), so its cost is bounded whatever the prompt.
    """

    Options: ClassVar[type[SignalOptions]] = SignalOptions
    text_max_chars: int = TEXT_MAX_CHARS
    #: True when computing costs milliseconds of CPU (a transformer per request): the
    #: engine then decides off the event loop
    blocking: bool = False

    def __init__(self, name: str, options: Mapping[str, Any], where: str = "") -> None:
        self.name = name
        self.where = where or f"signals.{name}"
        self.options = validate_options(self.Options, options, self.where)
        self.setup()

    def setup(self) -> None:
        """Prepare cheap state from ``self.options`` (compile regexes...); heavy work stays lazy."""

    def warmup(self) -> None:
        """Load heavy resources now (called once at server start-up)."""

    def compute(self, request: Request) -> SignalValue:
        raise NotImplementedError

    def fires(self, value: SignalValue) -> bool:
        """Whether ``value`` counts as true when a rule names this signal bare
        (``when: NAME``): truthiness by default; a score signal compares its threshold."""
        return bool(value)

    def members(self) -> frozenset[str] | None:
        """For a set-valued signal, the names its set may hold (what ``contains`` and
        ``contains_any`` may test); ``None`` for a signal whose value is not a set."""
        return None

    def read_text(self, request: Request, field: TextField) -> str:
        """``request.prompt`` or ``request.text``, bounded to ``text_max_chars`` characters
        (the first and last halves; see ``polyroute.types.bound_text``)."""
        return request.bounded(field, self.text_max_chars)


class SignalSet:
    """The signals of one request: each computed on first ``get`` and cached (a SignalSource)."""

    __slots__ = ("_signals", "request", "values")

    def __init__(self, signals: Mapping[str, BaseSignal], request: Request) -> None:
        self._signals = signals
        self.request = request
        self.values: dict[str, SignalValue] = {}

    def get(self, name: str) -> SignalValue:
        try:
            return self.values[name]
        except KeyError:
            value = self._signals[name].compute(self.request)
            self.values[name] = value
            return value

    def fires(self, name: str) -> bool:
        """The bare-rule meaning of signal ``name`` (see :meth:`BaseSignal.fires`)."""
        return self._signals[name].fires(self.get(name))
