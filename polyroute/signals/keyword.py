"""Keyword and regex signal: true when the prompt mentions any (or all) of some words.

Words match case-insensitively on word boundaries (``prove`` does not match
``improve``); words that start or end with punctuation (``c++``) use
look-arounds instead of ``\\b``.  ``regex`` patterns are matched as given.

A prompt longer than ``server.signal_text_max_chars`` is searched in its first
and last halves only (``BaseSignal.read_text``): a word in the middle of a
huge prompt is not seen.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, model_validator

from polyroute.signals.base import BaseSignal, SignalOptions
from polyroute.types import Request, SignalValue


class KeywordOptions(SignalOptions):
    any: list[str] = Field(default_factory=list)
    all: list[str] = Field(default_factory=list)
    regex: str | list[str] = Field(default_factory=list)
    case_sensitive: bool = False
    field: Literal["prompt", "text"] = "prompt"

    @model_validator(mode="after")
    def _need_something(self) -> KeywordOptions:
        if not (self.any or self.all or self.regex):
            raise ValueError("expected at least one of 'any', 'all' or 'regex'")
        for pattern in [self.regex] if isinstance(self.regex, str) else self.regex:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"invalid regex {pattern!r}: {exc}") from None
        return self


def _word_pattern(word: str) -> str:
    escaped = re.escape(word)
    left = r"\b" if word[:1].isalnum() or word[:1] == "_" else r"(?<!\w)"
    right = r"\b" if word[-1:].isalnum() or word[-1:] == "_" else r"(?!\w)"
    return f"{left}{escaped}{right}"


class KeywordSignal(BaseSignal):
    Options = KeywordOptions
    options: KeywordOptions

    def setup(self) -> None:
        opts = self.options
        flags = 0 if opts.case_sensitive else re.IGNORECASE
        self._any = (
            re.compile("|".join(_word_pattern(w) for w in opts.any), flags) if opts.any else None
        )
        self._all = tuple(re.compile(_word_pattern(w), flags) for w in opts.all)
        patterns = [opts.regex] if isinstance(opts.regex, str) else opts.regex
        self._regex = (
            re.compile("|".join(f"(?:{p})" for p in patterns), flags) if patterns else None
        )
        self._field = opts.field

    def compute(self, request: Request) -> SignalValue:
        # BaseSignal.read_text, inlined: on the hot path this costs one length comparison
        text = request.prompt if self._field == "prompt" else request.text
        if len(text) > self.text_max_chars:
            text = request.bounded(self._field, self.text_max_chars)
        if self._any is not None and self._any.search(text):
            return True
        if self._all and all(p.search(text) for p in self._all):
            return True
        return bool(self._regex is not None and self._regex.search(text))
