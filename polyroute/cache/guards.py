"""Guards of the hit rule: what must agree between a prompt and a cached one, whatever the score.

**Literal guard.**  Two prompts that carry different numbers or quoted strings never match.

A user who asks "convert 5 usd to eur" must never get the answer to "convert 50 usd to
eur", however close their embeddings are (sentence encoders barely see digits).  So a
cached entry may answer a prompt only when both carry the same *literals*:

- numbers: digit runs with their decimal/thousands separators (``5``, ``3.14``, ``1,000``
  -> ``1000``), and the English number words zero..twenty, the tens, hundred, thousand,
  million, billion (``five`` -> ``5``; not ``one``, mostly a pronoun), so "five" and "5"
  agree but "five hundred" and "500" do not (a miss, the safe side);
- quoted strings: the text between double quotes, curly quotes, backticks, or single
  quotes that do not sit inside a word (``what's`` is not a quote), lower-cased and
  whitespace-collapsed.

Literals are compared as sets (order and repetition aside); a prompt without any
literal only matches entries without any.

**Long-prompt guard.**  The encoder reads a bounded window (MiniLM: 256 word pieces), so
two long prompts that share their opening (a puzzle template, a pasted document) embed
alike whatever follows.  When either prompt has more than ``long_words`` words, a match
also needs the word-bigram Jaccard overlap of the two texts (:func:`shingles`) to reach
``long_overlap`` (1 by default: the same word bigrams, so case, punctuation and spacing
aside the same text; a long template with another question at its end is a miss).

The guards run on the shortlist only (~µs per pair), on the memory and the Redis index
alike (``Similarity.best``).
"""

from __future__ import annotations

import itertools
import re

_NUMBER = re.compile(r"(?<![\w.])\d+(?:[.,]\d+)*")
_QUOTED = re.compile(
    '"([^"\n]{1,200})"|\u201c([^\u201d\n]{1,200})\u201d|\u2018([^\u2019\n]{1,200})\u2019'
    r"|`([^`\n]{1,200})`"
    r"|(?<!\w)'([^'\n]{1,200})'(?!\w)"
)
_WORDS = re.compile(r"[a-z]+")
_TOKEN = re.compile(r"\w+")
_SMALL = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen "
    "fourteen fifteen sixteen seventeen eighteen nineteen twenty"
)
_NUMBER_WORDS: dict[str, str] = {
    word: str(value)
    for value, word in enumerate(_SMALL.split())
    if word != "one"  # mostly a pronoun ("which one"): "1" and "one" then differ, a miss
}
_NUMBER_WORDS.update(
    {
        "thirty": "30",
        "forty": "40",
        "fifty": "50",
        "sixty": "60",
        "seventy": "70",
        "eighty": "80",
        "ninety": "90",
        "hundred": "100",
        "thousand": "1000",
        "million": "1000000",
        "billion": "1000000000",
    }
)


def _number(raw: str) -> str:
    """``1,000`` -> ``1000``; ``3.50`` -> ``3.5``; ``007`` -> ``7`` (a comma followed by
    three digits groups thousands, one other separator is a decimal point; ``3.11.7``
    stays as it is)."""
    text = re.sub(r",(?=\d{3}(?!\d))", "", raw).replace(",", ".")
    if text.count(".") > 1:
        return raw
    whole, _, frac = text.partition(".")
    whole = whole.lstrip("0") or "0"
    frac = frac.replace(".", "").rstrip("0")
    return f"{whole}.{frac}" if frac else whole


def literals(text: str) -> frozenset[str]:
    """The numbers (``#5``) and quoted strings (``"q:hello"``) ``text`` carries."""
    found = {"#" + _number(m) for m in _NUMBER.findall(text)}
    lowered = text.lower()
    found.update("#" + _NUMBER_WORDS[w] for w in _WORDS.findall(lowered) if w in _NUMBER_WORDS)
    for groups in _QUOTED.findall(text):
        quote = " ".join(next(g for g in groups if g).lower().split())
        if quote:
            found.add("q:" + quote)
    return frozenset(found)


def tokens(text: str) -> list[str]:
    """The lower-cased ``\\w+`` runs of ``text``, in order."""
    return _TOKEN.findall(text.lower())


def shingles(words: list[str]) -> frozenset[tuple[str, str]]:
    """The word bigrams of a token list (what the long-prompt guard compares)."""
    return frozenset(itertools.pairwise(words))
