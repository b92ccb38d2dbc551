"""Recognizers of structured PII: one regex per entity type, plus a checksum where one exists.

``find(text, entities)`` returns the entity types found.  The recognizers, in the
order they claim text (a later one never matches inside an earlier one's span):

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
  single run of 10-11 digits also counts.  Dates (``2024-01-31``) and times are
  not phones.  Phones are the least precise type: numbers written like phones are
  phones here.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection
from dataclasses import dataclass

Validator = Callable[[re.Match[str]], bool]


def luhn_ok(number: str) -> bool:
    """The Luhn check over the digits of ``number``."""
    total = 0
    for i, ch in enumerate(reversed([c for c in number if c.isdigit()])):
        digit = int(ch)
        if i % 2:
            digit = digit * 2 - 9 if digit > 4 else digit * 2
        total += digit
    return total % 10 == 0


def _iban_match(match: re.Match[str]) -> bool:
    """The match, or the match without its last space-separated groups (a following word)."""
    parts = match.group().split(" ")
    return any(iban_ok(" ".join(parts[:n])) for n in range(len(parts), 0, -1))


def iban_ok(iban: str) -> bool:
    """ISO 13616: move the first four characters to the end, letters to 10..35, mod 97 == 1."""
    compact = iban.replace(" ", "").upper()
    if not 15 <= len(compact) <= 34:
        return False
    moved = compact[4:] + compact[:4]
    return int("".join(str(int(c, 36)) for c in moved)) % 97 == 1


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
_PHONE_AFTER = re.compile(r"\W{0,3}(?:office|fax|mobile|cell|home|work|desk)\b", re.IGNORECASE)


def _phone_ok(match: re.Match[str]) -> bool:
    """7-15 digits; a short one in at most two groups (``370 3911``, a street number and
    a house number?) needs a phone word just before it or a label just after it."""
    phone = match.group()
    digits = sum(c.isdigit() for c in phone.split("x")[0])
    if not 7 <= digits <= 15:
        return False
    groups = len(re.findall(r"\d+", phone.split("x")[0]))
    if phone.startswith("+") or groups > 2 or digits > 9:
        return True
    text, start, end = match.string, match.start(), match.end()
    return bool(
        _PHONE_BEFORE.search(text[max(0, start - 40) : start])
        or _PHONE_AFTER.match(text, end, end + 12)
    )


def _always(_: re.Match[str]) -> bool:
    return True


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
    r"(?:\(\d{1,4}\)[ .-]?|\d{1,5}[ .-])"  # the first group, maybe in parentheses
    r"(?:\d{1,5}[ .-]){0,4}\d{2,5}"  # more groups
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
        _luhn_match,
    ),
    "US_SSN": Recognizer(
        "US_SSN",
        re.compile(rf"{_B}\d{{3}}([-. ])\d{{2}}\1\d{{4}}{_E}"),
        _ssn_ok,
    ),
    "IP_ADDRESS": Recognizer("IP_ADDRESS", re.compile(f"{_IPV4}|{_IPV6}")),
    "PHONE_NUMBER": Recognizer(
        "PHONE_NUMBER",
        re.compile(rf"{_B}(?:{_PHONE_GROUPED}|\d{{10,11}}){_E}"),
        _phone_ok,
    ),
}
STRUCTURED: tuple[str, ...] = tuple(RECOGNIZERS)

# dates and times claim their text first, so ``2000-04-16 11:34`` is never a phone
_DATE = re.compile(
    r"\b(?:\d{4}[-/.]\d{1,2}[-/.]\d{1,2}|\d{1,2}[-/.]\d{1,2}[-/.]\d{4})"
    r"(?:[ T]\d{1,2}:\d{2}(?::\d{2})?)?|\b\d{1,2}:\d{2}(?::\d{2})?"
)


def find(text: str, entities: Collection[str] = STRUCTURED) -> frozenset[str]:
    """The entity types (among ``entities``) found in ``text``.

    Recognizers run in ``RECOGNIZERS`` order; a span claimed by one (a card number)
    is not searched again by a later one (as a phone).
    """
    found: set[str] = set()
    claimed = [m.span() for m in _DATE.finditer(text)]
    for name, rec in RECOGNIZERS.items():
        for match in rec.pattern.finditer(text):
            start, end = match.span()
            if any(s < end and start < e for s, e in claimed):
                continue
            if not rec.valid(match):
                continue
            claimed.append((start, end))
            if name in entities:
                found.add(name)
    return frozenset(found)
