"""The template guard: one template filled in two ways never hits, whatever the score."""

from __future__ import annotations

import pytest
from cache_support import vec

from polyroute.cache import MemoryIndex, Similarity
from polyroute.cache.guards import content_words, disjoint, template_clash, tokens
from polyroute.errors import ConfigError

SIM = Similarity("test", 3, threshold=0.8, accept=0.95)


def clash(a: str, b: str) -> bool:
    return template_clash(tuple(tokens(a)), tuple(tokens(b)))


CLASHES = [
    # the frame (shared opening and ending) is most of the prompt, the slots differ
    (
        "Write a python function to check for odd parity of a given number.",
        "Write a python function to find the parity of a given number.",
    ),
    (
        "Write a function to find the maximum of similar indices in two lists of tuples.",
        "Write a function to find the minimum of similar indices in two lists of tuples.",
    ),
    (
        "how do i say good morning to my boss in french",
        "how do i say good night to my boss in french",
    ),
    (
        "what is the capital city of austria in europe",
        "what is the capital city of australia in europe",
    ),
    # a frame that is only an opening
    (
        "Sort these words in alphabetical order please: pear, fig, plum",
        "Sort these words in alphabetical order please: kiwi, lime, date",
    ),
]

NO_CLASH = [
    ("create a new timer", "help me set a timer please"),  # little frame: a rewording
    ("what is my credit score", "tell me my credit score"),  # the slots are stopwords
    ("what is the weather like today", "what is the weather today"),  # one side adds none
    ("find the cube of a number", "find the cubes of a number"),  # an inflected form
    ("what colour is the sky", "what color is the sky"),  # a spelling variant
    ("how do i reset my password", "how do i reset my password"),  # the same text
    ("speak german", "speak french"),  # a frame under six words: left to the similarity
]


@pytest.mark.parametrize(("a", "b"), CLASHES)
def test_one_template_filled_two_ways_clashes(a: str, b: str) -> None:
    assert clash(a, b) and clash(b, a)


@pytest.mark.parametrize(("a", "b"), NO_CLASH)
def test_rewordings_and_additions_do_not_clash(a: str, b: str) -> None:
    assert not clash(a, b) and not clash(b, a)


def test_the_frame_share_and_length_are_parameters() -> None:
    a = tuple(tokens("book a table for two at luigis tonight at eight"))
    b = tuple(tokens("book a room for two at the ritz tonight at eight"))
    # frame: "book a" + "tonight at eight" = 5 words of 11
    assert not template_clash(a, b)
    assert template_clash(a, b, frame=0.4, min_words=5)
    assert not template_clash(a, b, frame=0.5, min_words=5)
    assert not template_clash(a, b, frame=0.4, min_words=6)


def test_long_prompts_sharing_almost_no_words_are_disjoint() -> None:
    a = content_words(tokens("chew, rock, serve, spin, building, look, crack, hole, wear, drive"))
    b = content_words(tokens("pump, curl, mouth, trick, dish, climb, drink, cup, rock, dart"))
    assert disjoint(a, b)
    assert not disjoint(a, a[:8] + b[:2])  # 8 shared of 12: a rewording keeps terms
    assert not disjoint(a[:7], b[:7])  # under 8 content words: left to the similarity


async def test_overlap_guard_refuses_disjoint_lists() -> None:
    for guard, expected in ((True, None), (False, b"list")):
        index = MemoryIndex(Similarity("test", 3, threshold=0.8, accept=0.95, overlap_guard=guard))
        await index.add(
            "s", vec(1, 0, 0), "chew, rock, serve, spin, building, look, crack, hole", b"list"
        )
        hit = await index.lookup(
            "s", vec(1, 0, 0), "pump, curl, mouth, trick, dish, climb, drink, cup"
        )
        assert (hit.answer if hit else None) == expected


async def test_guarded_index_refuses_the_other_filling_and_keeps_the_right_one() -> None:
    index = MemoryIndex(SIM)
    await index.add("s", vec(1, 0, 0), CLASHES[0][1], b"parity")
    assert await index.lookup("s", vec(1, 0, 0), CLASHES[0][0]) is None
    await index.add("s", vec(1, 0.3, 0), CLASHES[0][0], b"odd parity")
    # the nearest entry clashes: out of the running, so the right one answers
    hit = await index.lookup(
        "s", vec(1, 0.05, 0), "Write a python function to check for odd parity of a given number!"
    )
    assert hit is not None and hit.answer == b"odd parity"


async def test_the_guard_can_be_switched_off() -> None:
    index = MemoryIndex(Similarity("test", 3, threshold=0.8, accept=0.95, template_guard=False))
    await index.add("s", vec(1, 0, 0), CLASHES[0][1], b"parity")
    assert await index.lookup("s", vec(1, 0, 0), CLASHES[0][0]) is not None


@pytest.mark.parametrize("field", ["template_guard", "overlap_guard"])
def test_the_switches_must_be_booleans(field: str) -> None:
    with pytest.raises(ConfigError, match=field):
        Similarity("x", 3, threshold=0.8, accept=0.8, **{field: "yes"})  # type: ignore[arg-type]
