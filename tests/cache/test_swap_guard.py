"""The swap guard: word-order and one-term swaps never hit, whatever the cosine."""

from __future__ import annotations

import pytest
from cache_support import SIM, vec

from polyroute.cache import DEFAULTS, MemoryIndex, Similarity
from polyroute.cache.guards import STOPWORDS, content_words, inflection, swapped, tokens
from polyroute.errors import ConfigError


def content(text: str) -> tuple[str, ...]:
    return content_words(tokens(text))


SWAPS = [
    # word order: the same content words, another order
    ("flights from new york to los angeles", "flights from los angeles to new york"),
    ("flights from NYC to LA", "flights from LA to NYC"),
    ("convert euros to dollars", "convert dollars to euros"),
    ("why does the cat chase the dog", "why does the dog chase the cat"),
    ("did microsoft acquire github", "did github acquire microsoft"),
    # one term replaced by another (3+ content words on each side)
    (
        "write a python function to find the gcd of two numbers",
        "write a python function to find the lcm of two numbers",
    ),
    ("sort a list in ascending order in python", "sort a list in descending order in python"),
    ("how do i add a user to a group in linux", "how do i remove a user from a group in linux"),
    ("turn the living room lights on", "turn the living room lights off"),
    ("how do i increase the font size in word", "how do i decrease the font size in word"),
]


def test_content_words_drop_stopwords_and_numbers_but_keep_direction_and_negation() -> None:
    assert content("Show me the flights from NYC to LA, please") == ("flights", "nyc", "la")
    assert content("turn the lights off") == ("turn", "lights", "off")
    assert content("don't convert 5 usd") == ("don", "t", "convert", "usd")  # 5: literal guard
    assert 80 <= len(STOPWORDS) <= 160
    assert not {"not", "no", "without", "on", "off", "up", "down", "before", "after"} & STOPWORDS


@pytest.mark.parametrize(("cached", "prompt"), SWAPS)
async def test_swaps_never_hit(cached: str, prompt: str) -> None:
    index = MemoryIndex(SIM)
    await index.add("s", vec(1, 0, 0), cached, b"a")
    # identical vectors: only the swap tells them apart
    assert await index.lookup("s", vec(1, 0, 0), prompt) is None
    assert await index.lookup("s", vec(1, 0, 0), cached) is not None


@pytest.mark.parametrize(
    ("cached", "prompt"),
    [
        # other wording, the content words in the same order
        ("show me flights from new york to los angeles", "flights from new york to los angeles"),
        ("what's the weather like in paris", "tell me the weather in paris please"),
        # other wording altogether
        ("cancel my dinner reservation", "i no longer need the table i booked for tonight"),
        # an inflected form is the same term
        ("please help me find my lost phone", "i need help finding my lost phone"),
        # one word added or removed is not refused
        ("how do i reset my password", "how do i reset my account password"),
        # two content words: too few for a one-term swap
        ("what is my bank balance", "what is my account balance"),
        # numbers are the literal guard's: "five" and "5" agree
        ("convert 5 usd to eur", "convert five usd into eur"),
    ],
)
async def test_ordinary_paraphrases_still_hit(cached: str, prompt: str) -> None:
    index = MemoryIndex(SIM)
    await index.add("s", vec(1, 0, 0), cached, b"a")
    hit = await index.lookup("s", vec(1, 0, 0), prompt)
    assert hit is not None and hit.answer == b"a"


def test_swapped_rules() -> None:
    assert not swapped(("a", "b", "c"), ("a", "b", "c"))
    assert swapped(("x", "y"), ("y", "x"))  # word order needs no minimum
    assert not swapped(("x", "y"), ("x", "z"))  # a one-term swap needs 3 content words
    assert swapped(("x", "y", "w"), ("x", "z", "w"))
    assert not swapped(("x", "y", "w"), ("x", "y", "w", "v"))  # one word added: not refused
    assert swapped(("x", "y", "w"), ("x", "y", "w", "v"), added=True)
    assert not swapped(("x", "y", "w", "v"), ("x", "y", "p", "q"))  # two words changed
    assert inflection("card", "cards") and inflection("use", "used")
    assert not inflection("car", "card") and not inflection("add", "address")


async def test_swapped_entry_does_not_hide_the_right_one() -> None:
    index = MemoryIndex(SIM)
    await index.add("s", vec(1, 0, 0), "convert dollars to euros", b"usd->eur")
    await index.add("s", vec(1, 0.2, 0), "convert euros to dollars", b"eur->usd")
    # the nearest entry is the swap: out of the running, not a runner-up
    hit = await index.lookup("s", vec(1, 0, 0), "please convert euros to dollars")
    assert hit is not None and hit.answer == b"eur->usd"


async def test_swap_guard_can_be_switched_off() -> None:
    index = MemoryIndex(Similarity("test", 3, threshold=0.8, accept=0.95, swap_guard=False))
    await index.add("s", vec(1, 0, 0), "convert euros to dollars", b"a")
    assert await index.lookup("s", vec(1, 0, 0), "convert dollars to euros") is not None


async def test_one_word_additions_are_refused_only_on_request() -> None:
    cached, prompt = (
        "find the cube of a number in python",
        "find the cube root of a number in python",
    )
    for added, expected in ((False, True), (True, False)):
        index = MemoryIndex(Similarity("test", 3, threshold=0.8, accept=0.95, swap_added=added))
        await index.add("s", vec(1, 0, 0), cached, b"a")
        assert (await index.lookup("s", vec(1, 0, 0), prompt) is not None) is expected


@pytest.mark.parametrize("field", ["swap_guard", "swap_added", "literal_guard"])
def test_guard_switches_must_be_booleans(field: str) -> None:
    with pytest.raises(ConfigError, match=field):
        Similarity("x", 3, threshold=0.8, accept=0.8, **{field: "no"})  # type: ignore[arg-type]


def test_shipped_rules_keep_the_swap_guard_on() -> None:
    for sim in DEFAULTS.values():
        assert sim.swap_guard and not sim.swap_added


@pytest.mark.parametrize(
    ("a", "b", "same"),
    [
        ("colour", "color", True),
        ("organise", "organize", True),
        ("ascending", "descending", False),
        ("austria", "australia", False),
        ("gcd", "lcm", False),
        ("on", "no", False),
    ],
)
def test_spelling_variants_one_letter_apart_are_the_same_term(a: str, b: str, same: bool) -> None:
    assert inflection(a, b) is same
