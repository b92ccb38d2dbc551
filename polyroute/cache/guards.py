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

**Swap guard.**  Sentence encoders barely see word order or a single changed term:
"flights from new york to los angeles" and "... from los angeles to new york" embed at
MiniLM cosine 0.995, "sort ... in ascending order" and "... descending ..." at 0.95,
"turn the lights on" and "... off" at 0.90.  The guard compares the
prompts' *content words* (:func:`content_words`: the lower-cased ``\\w+`` runs minus the
small built-in stopword list :data:`STOPWORDS`, in order) and refuses a match when

- *word-order swap*: both carry the same multiset of content words in a different order
  ("from A to B" / "from B to A", "did microsoft acquire github" / "did github acquire
  microsoft"), or
- *one-term swap*: both carry at least :data:`SWAP_MIN_WORDS` (3) content words and their
  content-word sets differ by exactly one word replaced by another ("find the gcd of two
  numbers" / "... lcm ...", "ascending" / "descending", "add a user to" / "remove a user
  from": ``to`` and ``from`` are stopwords); an inflected form of the same word
  (:func:`inflection`: ``find`` / ``finding``, ``use`` / ``used``) or a spelling variant
  one letter apart (``colour`` / ``color``, words of 5+ letters) is no swap.

Numbers are left to the literal guard (``five`` / ``5`` is no swap).  Directional and
negating words (``on``/``off``, ``up``/``down``, ``before``/``after``, ``not``, ``no``,
``without``, the ``t`` of ``don't``) are *not* stopwords.  The cost is an ordinary
paraphrase that only reorders its content words ("send a text to joe" / "send joe a
text") or swaps one of them for a synonym ("present" / "current status of my credit card
application"): a miss, the safe side.  Two changed terms pass the guard ("gcd of two
numbers" / "lcm of two integers"); so does a one-word addition or removal ("cube" /
"cube root", "with eggs" / "without eggs") unless ``Similarity.swap_added`` asks for it
(off by default: ``benchmarks/RESULTS_cache.md``, 2026-11-30 evening note).

**Template guard.**  Templated prompts differ in one phrase: "Write a python function to
check for odd parity of a given number" / "... to find the parity of a given number"
embed close, and a family model puts them in one family.  :func:`template_clash` refuses
a pair whose shared opening and ending words (the frame: :data:`TEMPLATE_MIN_WORDS` or
more, covering :data:`TEMPLATE_FRAME` of the longer prompt) enclose slots with other
content words.  Short requests ("speak german" / "speak french") are left to the
similarity: their frames are short, and CLINC150 rewords one request by swapping a word
in a short frame often.

**Overlap guard.**  Two lists of twenty unrelated nouns embed at MiniLM cosine ~0.88.
:func:`disjoint` refuses prompts of :data:`OVERLAP_MIN_WORDS` or more content words
that share under :data:`OVERLAP_MIN_JACCARD` of them.

Both cost ~0.4-0.8 points of CLINC hits and halve the wrong hits on templated prompts
(``benchmarks/exp_cache_template.py``, ``RESULTS_cache_families.md``).

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


#: words that carry no request of their own (articles, pronouns, auxiliaries, most
#: prepositions, wh-words, request verbs and politeness); directional, negating and
#: quantity words (on/off, up/down, out, before/after, not, no, without, all, more,
#: many) stay content words on purpose
_STOPWORDS = """
    a an the and or but so than then also just as if
    of at by for with about to from in into onto via per
    i me my mine myself we us our ours you your yours yourself he him his she her hers
    it its they them their theirs this that these those there here
    what which who whom whose when where why how
    am is are was were be been being do does did doing have has had having
    can could will would shall should may might must
    s d ll re ve m
    please tell show give let know want need like help get
    some any too very really now currently
    hey hi hello thanks thank ok okay
"""
STOPWORDS: frozenset[str] = frozenset(_STOPWORDS.split())
#: endings that make an inflected form of the same word (:func:`inflection`)
_INFLECTIONS = frozenset({"s", "es", "ed", "ing"})
#: words at least this long that differ by one letter are spelling variants, no swap
SPELLING_MIN_CHARS = 5
#: the one-term swap needs at least this many content words on both sides
SWAP_MIN_WORDS = 3


def tokens(text: str) -> list[str]:
    """The lower-cased ``\\w+`` runs of ``text``, in order."""
    return _TOKEN.findall(text.lower())


def shingles(words: list[str]) -> frozenset[tuple[str, str]]:
    """The word bigrams of a token list (what the long-prompt guard compares)."""
    return frozenset(itertools.pairwise(words))


def content_words(words: list[str]) -> tuple[str, ...]:
    """The words of a token list (:func:`tokens`), in order, minus :data:`STOPWORDS` and
    numbers (digit runs and the number words of :func:`literals`: the literal guard's
    business, so "five" and "5" are no swap)."""
    return tuple(
        w for w in words if w not in STOPWORDS and w not in _NUMBER_WORDS and not w.isdigit()
    )


def inflection(x: str, y: str) -> bool:
    """Whether one word is the other plus a regular English inflection (``card`` /
    ``cards``, ``use`` / ``used`` / ``using``, ``find`` / ``finding``): the same term, no swap.
    Only these endings count (``car`` / ``card`` and ``add`` / ``address`` are swaps)."""
    short, long = sorted((x, y), key=len)
    if len(short) < 3:
        return False
    if long.startswith(short) and long[len(short) :] in _INFLECTIONS:
        return True
    if short.endswith("e") and long in (short + "d", short[:-1] + "ing"):
        return True
    return len(short) >= SPELLING_MIN_CHARS and _one_edit(short, long)


def _one_edit(short: str, long: str) -> bool:
    """One letter added, dropped or changed (``color`` / ``colour``, ``organize`` /
    ``organise``): a spelling variant.  Two or more (``ascending`` / ``descending``,
    ``austria`` / ``australia``) are different words."""
    if len(long) - len(short) > 1:
        return False
    if len(long) == len(short):
        return sum(p != q for p, q in zip(short, long, strict=True)) == 1
    i = next((i for i, (p, q) in enumerate(zip(short, long, strict=False)) if p != q), len(short))
    return short[i:] == long[i + 1 :]


def swapped(a: tuple[str, ...], b: tuple[str, ...], *, added: bool = False) -> bool:
    """Whether two content-word sequences (:func:`content_words`) are a word-order swap
    (the same multiset, another order) or a one-term swap (at least
    :data:`SWAP_MIN_WORDS` words on each side, sets that differ by one word replaced by
    another); with ``added``, also a one-word addition or removal (the shorter set has
    at least :data:`SWAP_MIN_WORDS` words; measured, not shipped)."""
    if a == b:
        return False
    if len(a) == len(b) and sorted(a) == sorted(b):
        return True
    sa, sb = frozenset(a), frozenset(b)
    da, db = sa - sb, sb - sa
    if len(da) == 1 and len(db) == 1:
        (x,), (y,) = da, db
        return min(len(sa), len(sb)) >= SWAP_MIN_WORDS and not inflection(x, y)
    only_a, only_b = len(da), len(db)
    if added and only_a + only_b == 1:
        return min(len(sa), len(sb)) >= SWAP_MIN_WORDS
    return False


#: the template guard looks at pairs whose shared opening and ending words cover at
#: least this share of the longer prompt's words ...
TEMPLATE_FRAME = 0.5
#: ... and number at least this many (short requests that share a few words, "speak
#: german" / "speak french", are left to the similarity: CLINC150 rewordings of one
#: request swap a word in a short frame often, "my luggage is missing" / "... lost")
TEMPLATE_MIN_WORDS = 6
#: the overlap guard looks at pairs with at least this many content words on each side ...
OVERLAP_MIN_WORDS = 8
#: ... and refuses them when the Jaccard overlap of their content-word sets is below this
OVERLAP_MIN_JACCARD = 0.2


def template_clash(
    a: tuple[str, ...],
    b: tuple[str, ...],
    *,
    frame: float = TEMPLATE_FRAME,
    min_words: int = TEMPLATE_MIN_WORDS,
) -> bool:
    """Whether two token lists (:func:`tokens`) are one template filled in two ways.

    The shared opening and ending words (the *frame*) number at least ``min_words`` and
    cover at least ``frame`` of the longer list, and the words between them (the
    *slots*) both carry content words (:func:`content_words`) that differ as sets, an
    inflected form or a spelling variant (:func:`inflection`) counting as the word:
    "write a python function to check for odd parity of a given number" / "... to find
    the parity of a given number", a multiple-choice template with another question.  A
    slot of stopwords only, or nothing (one prompt adds a word or two of no request), is
    no clash."""
    if a == b:
        return False
    shortest = min(len(a), len(b))
    head = 0
    while head < shortest and a[head] == b[head]:
        head += 1
    tail = 0
    while tail < shortest - head and a[-1 - tail] == b[-1 - tail]:
        tail += 1
    if head + tail < max(min_words, frame * max(len(a), len(b))):
        return False
    slot_a = set(content_words(list(a[head : len(a) - tail])))
    slot_b = set(content_words(list(b[head : len(b) - tail])))
    if not slot_a or not slot_b:
        return False
    only_a, only_b = slot_a - slot_b, slot_b - slot_a
    return any(not any(inflection(x, y) for y in only_b) for x in only_a) or any(
        not any(inflection(x, y) for x in only_a) for y in only_b
    )


def disjoint(a: tuple[str, ...], b: tuple[str, ...]) -> bool:
    """Whether two content-word sequences (:func:`content_words`) of at least
    :data:`OVERLAP_MIN_WORDS` words each share almost none of their words (set Jaccard
    below :data:`OVERLAP_MIN_JACCARD`): two lists of twenty unrelated nouns embed at
    MiniLM cosine ~0.88, and a long rewording of one request keeps some of its terms."""
    sa, sb = frozenset(a), frozenset(b)
    if min(len(sa), len(sb)) < OVERLAP_MIN_WORDS:
        return False
    return len(sa & sb) < OVERLAP_MIN_JACCARD * len(sa | sb)
