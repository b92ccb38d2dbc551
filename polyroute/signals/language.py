"""Language of the prompt as an ISO 639-1 code (``en``, ``fr``...), by lingua, offline.

``languages`` restricts the detector to the languages a deployment cares about
(faster and more accurate); prompts shorter than ``min_chars`` give ``None``.
It reads the first 2,000 characters of the (bounded, ``BaseSignal.read_text``) prompt.
The detector is built on first use or at ``warmup``, never at import.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field, field_validator

from polyroute.signals.base import BaseSignal, SignalOptions
from polyroute.types import Request, SignalValue


class LanguageOptions(SignalOptions):
    languages: list[str] = Field(default_factory=list)
    min_chars: int = Field(default=3, ge=0)
    low_accuracy: bool = True

    @field_validator("languages")
    @classmethod
    def _known(cls, value: list[str]) -> list[str]:
        from lingua import IsoCode639_1

        codes = [v.lower() for v in value]
        for code in codes:
            if not hasattr(IsoCode639_1, code.upper()):
                raise ValueError(f"unknown ISO 639-1 language code {code!r}")
        if len(codes) == 1:
            raise ValueError("expected at least two languages (or none for all)")
        return codes


class LanguageSignal(BaseSignal):
    Options = LanguageOptions
    options: LanguageOptions
    _detector: Any = None

    def warmup(self) -> None:
        if self._detector is not None:
            return
        from lingua import IsoCode639_1, LanguageDetectorBuilder

        opts = self.options
        if opts.languages:
            codes = [getattr(IsoCode639_1, c.upper()) for c in opts.languages]
            builder = LanguageDetectorBuilder.from_iso_codes_639_1(*codes)
        else:
            builder = LanguageDetectorBuilder.from_all_languages()
        if opts.low_accuracy:
            builder = builder.with_low_accuracy_mode()
        self._detector = builder.with_preloaded_language_models().build()

    def compute(self, request: Request) -> SignalValue:
        text = self.read_text(request, "prompt")
        if len(text.strip()) < self.options.min_chars:
            return None
        self.warmup()
        language = self._detector.detect_language_of(text[:2000])
        return None if language is None else str(language.iso_code_639_1.name).lower()
