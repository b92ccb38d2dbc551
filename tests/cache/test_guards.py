"""The literal guard: different numbers or quoted strings never hit, whatever the cosine."""

from __future__ import annotations

import pytest
from cache_support import SIM, vec

from polyroute.cache import MemoryIndex, Similarity
from polyroute.cache.guards import literals


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("convert 5 usd to eur", {"#5"}),
        ("convert five usd to eur", {"#5"}),
        ("pay 1,000 dollars", {"#1000"}),
        ("pay 1000.00 dollars", {"#1000"}),
        ("it costs 3.50", {"#3.5"}),
        ("upgrade to 3.11.7", {"#3.11.7"}),
        ('translate "Good  morning" to french', {"q:good morning"}),
        ("say `ls -la`", {"q:ls -la"}),
        ("what's my balance", set()),  # an apostrophe is no quote
        ("which one is better", set()),  # "one" is mostly a pronoun
    ],
)
def test_literals(text: str, expected: set[str]) -> None:
    assert literals(text) == expected


async def test_different_numbers_never_hit() -> None:
    index = MemoryIndex(SIM)
    await index.add("s", vec(1, 0, 0), "convert 5 usd to eur", b"five")
    # identical vector: only the literals differ
    assert await index.lookup("s", vec(1, 0, 0), "convert 50 usd to eur") is None
    assert await index.lookup("s", vec(1, 0, 0), "convert usd to eur") is None
    hit = await index.lookup("s", vec(1, 0, 0), "convert five usd into eur")
    assert hit is not None and hit.answer == b"five"


async def test_different_quotes_never_hit() -> None:
    index = MemoryIndex(SIM)
    await index.add("s", vec(1, 0, 0), 'translate "good morning" to french', b"bonjour")
    assert await index.lookup("s", vec(1, 0, 0), 'translate "good night" to french') is None
    hit = await index.lookup("s", vec(1, 0, 0), "translate 'Good morning' into french")
    assert hit is not None and hit.answer == b"bonjour"


async def test_guarded_entry_does_not_hide_the_right_one() -> None:
    index = MemoryIndex(SIM)
    await index.add("s", vec(1, 0, 0), "set a timer for 10 minutes", b"ten")
    await index.add("s", vec(1, 0.2, 0), "set a timer for 5 minutes", b"five")
    # the nearest entry carries another number: out of the running, not a runner-up
    hit = await index.lookup("s", vec(1, 0, 0), "timer for 5 minutes please")
    assert hit is not None and hit.answer == b"five"


async def test_guard_can_be_switched_off() -> None:
    index = MemoryIndex(Similarity("test", 3, threshold=0.8, accept=0.95, literal_guard=False))
    await index.add("s", vec(1, 0, 0), "convert 5 usd to eur", b"five")
    assert await index.lookup("s", vec(1, 0, 0), "convert 50 usd to eur") is not None


async def test_long_prompts_hit_only_a_nearly_identical_text() -> None:
    index = MemoryIndex(SIM)
    body = "There are 4 houses in a row; each person owns a car and plays an instrument. " * 12
    await index.add("s", vec(1, 0, 0), body + "Who owns the sedan?", b"sedan")
    # the encoder saw the same opening: cosine 1, but the long texts differ at the end
    assert await index.lookup("s", vec(1, 0, 0), body + "Who plays the cello?") is None
    hit = await index.lookup("s", vec(1, 0, 0), body + "who owns the sedan")
    assert hit is not None and hit.answer == b"sedan"


def test_bad_guard_settings_are_config_errors() -> None:
    from polyroute.errors import ConfigError

    with pytest.raises(ConfigError, match="long_overlap"):
        Similarity("x", 3, threshold=0.8, accept=0.8, long_overlap=1.5)
    with pytest.raises(ConfigError, match="long_words"):
        Similarity("x", 3, threshold=0.8, accept=0.8, long_words=0)


def test_shipped_rules_keep_the_guards_on() -> None:
    from polyroute.cache import DEFAULTS

    for sim in DEFAULTS.values():
        assert sim.literal_guard and sim.long_words == 100 and sim.long_overlap == 1.0
