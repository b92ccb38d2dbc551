"""Recognizers of structured PII: one regex per entity type, plus a checksum where one exists.

``spans(text, entities)`` returns the values found (``Span``: start, end, entity,
value; sorted, never overlapping), ``find(text, entities)`` their types, and
``span_finder(entities)`` a function of the text that adds the model types
(PERSON, ...: ``polyroute.signals.pii_person``, loaded only when asked for).  The
recognizers, in the order they claim text (a later one never matches inside an
earlier one's span):

- ``EMAIL_ADDRESS``: ``local@domain.tld``.
- ``IBAN_CODE``: a country code, two check digits and 11-30 letters/digits (spaces
  allowed every four characters), case-insensitive; the ISO 13616 mod-97 check must
  give 1.  ``GB82 WEST 1234 5698 7654 32`` is one; the same with a changed digit is not.
- ``CREDIT_CARD``: 12-19 digits, optionally grouped by single spaces or dashes,
  passing the Luhn check.  A 16-digit number failing Luhn is not a card.
- ``US_SSN``: ``AAA-GG-SSSS`` (dashes, spaces or dots, the same separator twice);
  area 000, 666 and 900-999, group 00 and serial 0000 are never issued, so refused.
- ``IP_ADDRESS``: a dotted quad of 0-255 (no leading zeros) not followed or preceded
  by another ``.digit`` (so a version ``1.2.3.4.5`` is not an IP), and not directly
  after ``v``/``version`` (``v1.2.3.4``, ``version 10.0.0.1`` read as versions);
  a bare ``1.2.3.4`` *is* reported: it is a valid address.  IPv6: the full form or
  with ``::``, at least three groups.
- ``PHONE_NUMBER``: 7-15 digits in at least two groups separated by spaces, dots,
  dashes or parentheses, optionally ``+CC``, ``(0)`` and an ``x123`` extension; a
  single run of 10-11 digits, or ``+CC`` and 6-14 digits, also counts, and one of
  7-9 digits after a word naming a phone (``call``, ``mobile``...).  Two groups
  of at most 9 digits, or two groups with one longer than five (``1234 5678901``),
  need a phone word before them (``phone``, ``call``, ``mobile``...) or a label
  after them (``office``, ``fax``...), unless the first is an area code in
  parentheses or with a trunk 0 (``(0114) 4960318``, ``0393 1144137``).  Dates
  (``2024-01-31``) and times are not phones.  Phones are the least precise type:
  numbers written like phones are phones here.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection
from dataclasses import dataclass

# a validator gives the end of the accepted text (``match.end()`` or before), None to refuse
Validator = Callable[[re.Match[str]], int | None]


def luhn_ok(number: str) -> bool:
    """The Luhn check over the digits of ``number``."""
    total = 0
    for i, ch in enumerate(reversed([c for c in number if c.isdigit()])):
        digit = int(ch)
        if i % 2:
            digit = digit * 2 - 9 if digit > 4 else digit * 2
        total += digit
    return total % 10 == 0


def _iban_match(match: re.Match[str]) -> int | None:
    """The match, or the match without its last space-separated groups (a following word)."""
    parts = match.group().split(" ")
    for n in range(len(parts), 0, -1):
        value = " ".join(parts[:n])
        if iban_ok(value):
            return match.start() + len(value)
    return None


def iban_ok(iban: str) -> bool:
    """ISO 13616: move the first four characters to the end, letters to 10..35, mod 97 == 1."""
    compact = iban.replace(" ", "").upper()
    if not 15 <= len(compact) <= 34:
        return False
    moved = compact[4:] + compact[:4]
    return int("".join(str(int(c, 36)) for c in moved)) % 97 == 1


def _whole(check: Callable[[re.Match[str]], bool]) -> Validator:
    """A yes/no check as a validator accepting the whole match."""

    def valid(match: re.Match[str]) -> int | None:
        return match.end() if check(match) else None

    return valid


def _luhn_match(match: re.Match[str]) -> bool:
    return luhn_ok(match.group())


def _ssn_ok(match: re.Match[str]) -> bool:
    area, group, serial = re.split(r"[-. ]", match.group())
    return area not in ("000", "666") and area[0] != "9" and group != "00" and serial != "0000"


_PHONE_BEFORE = re.compile(
    r"(?:phone|call|mobile|tel|fax|desk|cell|answer|number|registered|reach|text|contact|dial)"
    r"\W*(?:\w+\W+){0,3}$",
    re.IGNORECASE,
)
# a bare run of digits needs a word that names a phone ("number" is not enough)
_PHONE_NAMED = re.compile(
    r"(?:phone|call|mobile|tel|fax|cell|dial|whatsapp|sms)\w*\W*(?:\w+\W+){0,3}$",
    re.IGNORECASE,
)
_PHONE_AFTER = re.compile(r"\W{0,3}(?:office|fax|mobile|cell|home|work|desk)\b", re.IGNORECASE)


def _phone_ok(match: re.Match[str]) -> bool:
    """7-15 digits, in a shape that reads as a phone or with a phone word around it."""
    phone = match.group()
    groups = [len(g) for g in re.findall(r"\d+", phone.split("x")[0])]
    digits = sum(groups)
    if not 7 <= digits <= 15:
        return False
    text, start, end = match.string, match.start(), match.end()
    before = text[max(0, start - 40) : start]
    if len(groups) == 1 and digits < 10 and not phone.startswith("+"):
        return bool(_PHONE_NAMED.search(before))
    if not _ambiguous(phone, groups, digits):
        return True
    return bool(_PHONE_BEFORE.search(before) or _PHONE_AFTER.match(text, end, end + 12))


def _ambiguous(phone: str, groups: list[int], digits: int) -> bool:
    """Two groups that may be something else: short ones (``370 3911``, a street number
    and a house number?) or one long one (``1234 5678901``, an amount and a reference?),
    unless the first is an area code: in parentheses or with a trunk 0 (``(0114)
    4960318``, ``0393 1144137``)."""
    if phone.startswith("+") or len(groups) != 2:
        return False
    if phone.startswith("(") or (phone.startswith("0") and digits >= 10):
        return False
    return digits <= 9 or max(groups) > 5


def _always(match: re.Match[str]) -> int | None:
    return match.end()


@dataclass(frozen=True, slots=True)
class Recognizer:
    entity: str
    pattern: re.Pattern[str]
    valid: Validator = _always


_B = r"(?<![\w@.+-])"  # not inside a word, an address or a longer number
_E = r"(?![\w@]|[.,-]\d)"  # not followed by more of the same token

_OCTET = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
_IPV4 = rf"(?<![\w.])(?<!v)(?<!version ){_OCTET}(?:\.{_OCTET}){{3}}(?![\w]|\.\d)"
_H = r"[0-9a-fA-F]{1,4}"
_IPV6 = (
    rf"(?<![\w:])(?:(?:{_H}:){{7}}{_H}|(?:{_H}:){{1,6}}:(?:{_H}(?::{_H}){{0,5}})?"
    rf"|::(?:{_H}:){{1,6}}{_H})(?![\w:])"
)

_PHONE_GROUPED = (
    r"(?:\+\d{1,3}[ .-]?)?(?:\(0\)[ ]?)?"  # +CC and the UK/CH/SE (0)
    r"(?:\(\d{1,5}\)[ .-]?|\d{1,5}[ .-])"  # the first group, maybe in parentheses
    r"(?:\d{1,5}[ .-]){0,4}\d{2,8}"  # more groups
    r"(?:[ ]?x\d{1,5})?"  # extension
)

RECOGNIZERS: dict[str, Recognizer] = {
    "EMAIL_ADDRESS": Recognizer(
        "EMAIL_ADDRESS",
        re.compile(r"(?<![\w.+-])[\w.+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b"),
    ),
    "IBAN_CODE": Recognizer(
        "IBAN_CODE",
        re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}\b", re.IGNORECASE),
        _iban_match,
    ),
    "CREDIT_CARD": Recognizer(
        "CREDIT_CARD",
        re.compile(rf"{_B}\d(?:[ -]?\d){{11,18}}{_E}"),
        _whole(_luhn_match),
    ),
    "US_SSN": Recognizer(
        "US_SSN",
        re.compile(rf"{_B}\d{{3}}([-. ])\d{{2}}\1\d{{4}}{_E}"),
        _whole(_ssn_ok),
    ),
    "IP_ADDRESS": Recognizer("IP_ADDRESS", re.compile(f"{_IPV4}|{_IPV6}")),
    "PHONE_NUMBER": Recognizer(
        "PHONE_NUMBER",
        re.compile(rf"{_B}(?:{_PHONE_GROUPED}|\d{{7,11}}|\+\d{{1,3}} ?(?:\(0\) ?)?\d{{6,14}}){_E}"),
        _whole(_phone_ok),
    ),
}
STRUCTURED: tuple[str, ...] = tuple(RECOGNIZERS)

# dates and times claim their text first, so ``2000-04-16 11:34`` is never a phone
_DATE = re.compile(
    r"\b(?:\d{4}[-/.]\d{1,2}[-/.]\d{1,2}|\d{1,2}[-/.]\d{1,2}[-/.]\d{4})"
    r"(?:[ T]\d{1,2}:\d{2}(?::\d{2})?)?|\b\d{1,2}:\d{2}(?::\d{2})?"
)


@dataclass(frozen=True, slots=True)
class Span:
    """One value found in a text: ``text[start:end] == value``."""

    start: int
    end: int
    entity: str
    value: str


def spans(text: str, entities: Collection[str] = STRUCTURED) -> list[Span]:
    """The values of the types in ``entities`` found in ``text``, sorted by start.

    Recognizers run in ``RECOGNIZERS`` order; a span claimed by one (a card number)
    is not searched again by a later one (as a phone), and dates claim their text
    before all of them.  Each regex scans left to right and takes the longest match
    at each position, so the spans never overlap and the result depends only on
    ``text``.  Types not in ``entities`` still claim their text: asking for phones
    alone never reports the digits of a card as a phone.
    """
    found: list[Span] = []
    claimed = [m.span() for m in _DATE.finditer(text)]
    for name, rec in RECOGNIZERS.items():
        for match in rec.pattern.finditer(text):
            start, end = match.span()
            if any(s < end and start < e for s, e in claimed):
                continue
            valid_end = rec.valid(match)
            if valid_end is None:
                continue
            claimed.append((start, valid_end))
            if name in entities:
                found.append(Span(start, valid_end, name, text[start:valid_end]))
    found.sort(key=lambda s: s.start)
    return found


SpanFinder = Callable[[str], list[Span]]


def span_finder(entities: Collection[str] = STRUCTURED) -> SpanFinder:
    """A function giving the spans of ``entities`` in a text.

    Structured types use the recognizers above; PERSON and the other model types
    (``polyroute.signals.pii_person.NER_ENTITIES``) load presidio and spaCy, only
    when asked for (a ``ConfigError`` names the package to install when missing).
    A model span that overlaps a structured one is dropped: the structured one wins.
    """
    wanted = frozenset(entities)
    structured = wanted & RECOGNIZERS.keys()
    model_types = wanted - structured
    if not model_types:
        return lambda text: spans(text, structured)
    from polyroute.signals.pii_person import ner_finder

    ner = ner_finder(sorted(model_types))

    def find_all(text: str) -> list[Span]:
        found = spans(text, structured)
        kept = [n for n in ner(text) if not any(s.start < n.end and n.start < s.end for s in found)]
        return sorted(found + kept, key=lambda s: s.start)

    return find_all


def find(text: str, entities: Collection[str] = STRUCTURED) -> frozenset[str]:
    """The entity types (among ``entities``) found in ``text`` (see ``spans``)."""
    return frozenset(s.entity for s in spans(text, entities))
