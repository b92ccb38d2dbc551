"""Request metadata: a header value (``x-tenant: gold``) or a body field such as ``user``."""

from __future__ import annotations

from pydantic import model_validator

from polyroute.signals.base import BaseSignal, SignalOptions
from polyroute.types import Request, SignalValue


class MetadataOptions(SignalOptions):
    header: str | None = None
    field: str | None = None
    default: str | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> MetadataOptions:
        if (self.header is None) == (self.field is None):
            raise ValueError("expected exactly one of 'header' or 'field'")
        return self


class MetadataSignal(BaseSignal):
    Options = MetadataOptions
    options: MetadataOptions

    def setup(self) -> None:
        self._header = self.options.header.lower() if self.options.header else None

    def compute(self, request: Request) -> SignalValue:
        if self._header is not None:
            value = request.headers.get(self._header)
        else:
            raw = request.body.get(self.options.field or "")
            value = raw if isinstance(raw, str) else None
        return value if value is not None else self.options.default
