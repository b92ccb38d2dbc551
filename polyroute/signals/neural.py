"""The shared part of the encoder-backed signals (``jailbreak``, ``domain``, ``similarity``).

The model (``model: DIR`` from ``polyroute train-signal``, else the shipped default)
loads when the config is built, so a missing or corrupt file is a ConfigError naming
it.  The encoder loads at ``warmup`` (gateway start-up: a failure there stops it with
the error) or on first use (a failure there is logged once; the signal stays unknown).
Any failure while computing (an encoder error, a non-finite score, ...) is logged and
gives ``None`` (unknown): a rule comparing it is false, and the request is still routed.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy.typing as npt
from pydantic import Field

from polyroute.batching import embed_key, feature_cache
from polyroute.embed import Array, Encoder, serving_encoder
from polyroute.errors import ConfigError
from polyroute.signals.base import BaseSignal, SignalOptions
from polyroute.signals.finetuned import FINETUNED, finetuned_encoder
from polyroute.signals.textmodel import ModelType, TextModel, default_model_dir, load_model
from polyroute.types import Request, SignalValue

_LOG = logging.getLogger("polyroute.signals")


class ModelOptions(SignalOptions):
    model: str | None = None
    #: a shipped alternative to the default model (``domain``: ``fast``, the static
    #: encoder alone, 0.2 ms a prompt, less accurate; ``accurate``, MiniLM alone, 6-36 ms;
    #: the default is a cascade of the two)
    variant: str | None = Field(default=None, pattern=r"^[a-z0-9_]{1,32}$")
    #: the model's decision threshold (default: the one calibrated when it was trained)
    threshold: float | None = Field(default=None, ge=0.0, le=1.0)


def is_blocking_encoder(encoder_id: str) -> bool:
    """Whether encoding one prompt costs milliseconds (a transformer), not microseconds."""
    return encoder_id != "static"


class EncoderSignal(BaseSignal):
    """A signal computed from an encoder's vectors: the encoder (and what depends on it)
    loads in :meth:`load_encoder`, at ``warmup`` or on first use; subclasses implement
    :meth:`evaluate`.  Every failure while computing gives ``None`` (see the module
    docstring)."""

    encoder: Encoder | None = None
    _broken = False

    def load_encoder(self) -> Encoder:
        raise NotImplementedError

    def warmup(self) -> None:
        if self.encoder is None:
            self.encoder = self.load_encoder()

    def compute(self, request: Request) -> SignalValue:
        try:
            if self.encoder is None:
                if self._broken:  # the encoder failed to load once: do not retry per request
                    return None
                self._broken = True
                self.warmup()
                self._broken = False
            assert self.encoder is not None
            return self.evaluate(RequestEncoder(self.encoder, request), request)
        except Exception as exc:  # a failing signal is unknown, never a failed request
            _LOG.warning("signal %s failed: %s: %s", self.name, type(exc).__name__, exc)
            return None

    def evaluate(self, encoder: Encoder, request: Request) -> SignalValue:
        raise NotImplementedError

    def encoder_texts(self, request: Request) -> tuple[str, ...]:
        """The texts :meth:`evaluate` will encode for ``request`` (the engine encodes them
        beforehand, batched with concurrent requests); ``()``: not known in advance."""
        return (self.read_text(request, "prompt"),)

    @staticmethod
    def _finite(value: Any) -> float:
        number = float(value)
        if not math.isfinite(number):
            raise ValueError(f"the model gave {number}")
        return number


class RequestEncoder:
    """An encoder seen through one request's feature cache (``request.memo``): a text
    already encoded by this encoder for this request (by another signal, or the semantic
    cache) is not encoded again."""

    def __init__(self, encoder: Encoder, request: Request) -> None:
        self.encoder = encoder
        self.id = encoder.id
        self.request = request

    def encode(self, texts: Sequence[str]) -> Array:
        if len(texts) != 1:
            return self.encoder.encode(texts)
        return embed_memo(self.request, self.encoder, texts[0])

    def fit(self, texts: Sequence[str]) -> Encoder:
        return self.encoder.fit(texts)

    def state(self) -> dict[str, npt.NDArray[Any]]:
        return self.encoder.state()


def embed_memo(request: Request, encoder: Encoder, text: str) -> Array:
    """``encoder.encode([text])``, computed once per request, encoder and text."""
    memo, key = feature_cache(request), embed_key(encoder, text)
    vector: Array | None = memo.get(key)
    if vector is None:
        vector = memo[key] = encoder.encode([text])
    return vector


class ModelSignal(EncoderSignal):
    """Loads ``self.model`` in ``setup`` (a ConfigError naming the file when it cannot)."""

    kind: ClassVar[ModelType]
    Options = ModelOptions
    options: ModelOptions

    def setup(self) -> None:
        path = self.options.model or default_model_dir(self.kind)
        variant = self.options.variant
        if variant is not None:
            if self.options.model is not None:
                raise ConfigError(f"{self.where}: give model: DIR or variant: NAME, not both")
            path = default_model_dir(self.kind).with_name(f"{self.kind}-{variant}")
            if not path.is_dir():
                known = sorted(
                    p.name.removeprefix(f"{self.kind}-") for p in path.parent.glob(f"{self.kind}-*")
                )
                raise ConfigError(
                    f"{self.where}.variant: no shipped {self.kind} model {variant!r}; "
                    f"expected one of {known or 'none'}"
                )
        try:
            self.model: TextModel = self.load_model(Path(path))
        except ConfigError as exc:
            raise ConfigError(f"{self.where}.model: {exc.message}") from None
        self.blocking = is_blocking_encoder(self.model.encoder)
        chosen = self.options.threshold
        self.threshold = self.model.threshold if chosen is None else chosen

    def load_model(self, path: Path) -> TextModel:
        """The model at ``path`` (a subclass may keep more of what it finds there)."""
        return load_model(path, self.kind)

    def load_encoder(self) -> Encoder:
        return model_encoder(self.model, self.where)


def model_encoder(model: TextModel, where: str) -> Encoder:
    """A serving encoder for ``model``, checked against its width (errors name ``where``)."""
    if model.encoder == FINETUNED:
        assert model.source is not None  # load_model sets it
        encoder: Encoder = finetuned_encoder(model.source)
    else:
        encoder = serving_encoder(model.encoder)
    width = encoder.encode(["warm up"]).shape[1]
    if width != model.coef.shape[1]:
        raise ConfigError(
            f"{where}: the model expects {model.coef.shape[1]}-dim "
            f"vectors, encoder {model.encoder!r} gives {width}"
        )
    return encoder


class StagedSignal(ModelSignal):
    """A model signal whose model may be a two-stage cascade (``domain``, ``jailbreak``):
    the subclass's :meth:`fast_stage` names the cascade's fast model, ``self.model`` is
    the accurate one.  Both encoders load; when the accurate one cannot (no MiniLM here),
    the fast stage answers every prompt (``alone``), logged."""

    #: the cascade's fast-stage encoder (loaded with the accurate one)
    fast_encoder: Encoder | None = None
    #: True when a cascade's accurate stage could not load: the fast stage answers alone
    alone = False

    def fast_stage(self) -> TextModel | None:
        """The cascade's fast model; None when the model is a single one."""
        return None

    def load_encoder(self) -> Encoder:
        fast = self.fast_stage()
        if fast is None:
            return super().load_encoder()
        self.fast_encoder = model_encoder(fast, self.where)
        try:
            return super().load_encoder()
        except Exception as exc:  # the fast stage still scores every prompt
            _LOG.warning(
                "signal %s: the accurate stage cannot load (%s: %s); the fast stage answers alone",
                self.name, type(exc).__name__, exc,
            )  # fmt: skip
            self.alone = True
            return self.fast_encoder
