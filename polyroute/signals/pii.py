"""PII signal: the set of PII entity types found in the request's user text.

In-process regexes with checksums (see ``polyroute.signals.pii_recognizers``) for
the structured types, the default; PERSON, LOCATION and DATE_TIME
(``polyroute.signals.pii_person``: presidio and spaCy's small English model, the
``pii`` extra) only when ``entities`` names them, which makes the signal blocking
(milliseconds per prompt) and loads the model at warm-up.  The value is a
``frozenset`` of entity names (empty: none found); bare in a rule it fires when the
set is not empty, and ``{signal: pii, contains: CREDIT_CARD}`` / ``contains_any:
[...]`` test members.  Traces write it as a sorted JSON list.

``scope``: ``user`` (every user message, the default), ``last_user`` (the last
one; the completion prompt for completions) or ``all`` (every message, system and
assistant too).  The text is bounded like the other text signals
(``server.signal_text_max_chars``).  Any error while scanning is logged and gives
``None`` (unknown), never a failed request.
"""

from __future__ import annotations

import logging
from typing import Annotated, Literal

from pydantic import AfterValidator, Field

from polyroute.signals.base import BaseSignal, SignalOptions
from polyroute.signals.pii_person import NER_ENTITIES, check_installed, load
from polyroute.signals.pii_recognizers import RECOGNIZERS, STRUCTURED, span_finder
from polyroute.types import Request, SignalValue, bound_text

_LOG = logging.getLogger("polyroute.signals")


def known_entities(value: list[str]) -> list[str]:
    known = [*RECOGNIZERS, *NER_ENTITIES]
    unknown = [e for e in value if e not in known]
    if unknown:
        raise ValueError(f"unknown entity {unknown}; expected some of {known}")
    return value


#: an ``entities`` option (the signal's, the plugin's): known types, the structured ones
#: by default
Entities = Annotated[list[str], Field(min_length=1), AfterValidator(known_entities)]


def _structured() -> list[str]:
    return list(STRUCTURED)


class PiiOptions(SignalOptions):
    entities: Entities = Field(default_factory=_structured)
    scope: Literal["user", "last_user", "all"] = "user"


class PiiSignal(BaseSignal):
    Options = PiiOptions
    options: PiiOptions

    def setup(self) -> None:
        self._entities = frozenset(self.options.entities)
        self._model = bool(self._entities & set(NER_ENTITIES))
        if self._model:
            check_installed()  # a missing package fails the config load, not a request
            self.blocking = True
        self._find = span_finder(self._entities)

    def warmup(self) -> None:
        if self._model:
            load()

    def members(self) -> frozenset[str] | None:
        return self._entities

    def _text(self, request: Request) -> str:
        scope = self.options.scope
        if scope == "last_user":
            return self.read_text(request, "prompt")
        if scope == "all":
            return self.read_text(request, "text")
        return bound_text(request.user_text, self.text_max_chars)

    def compute(self, request: Request) -> SignalValue:
        try:
            return frozenset(s.entity for s in self._find(self._text(request)))
        except Exception as exc:  # a failing signal is unknown, never a failed request
            _LOG.warning("signal %s failed: %s: %s", self.name, type(exc).__name__, exc)
            return None
