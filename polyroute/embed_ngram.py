"""``ngram``: hashed word and character n-grams, for text classifiers that must catch the
*form* of a prompt (jailbreak phrasings, obfuscations) more than its meaning.

Each prompt becomes one ``DIM``-wide float32 vector: word 1-2-grams and character
2-5-grams (over the NFKC-normalised, lower-cased text with runs of spaces collapsed),
each n-gram hashed (CRC-32) to a column with a sign from another bit of the hash, its
weight ``1 + log(count)``; the word block and the character block are each scaled to
unit length and summed.  No vocabulary and no fitted state: the same vector in training
and serving, whatever the data.  About half a millisecond for a 128-token prompt; prompts
are read up to ``MAX_CHARS`` characters (first and last halves).
"""

from __future__ import annotations

import itertools
import math
import re
import unicodedata
import zlib
from collections import Counter
from collections.abc import Sequence
from itertools import repeat
from typing import Any

import numpy as np
import numpy.typing as npt

from polyroute.types import bound_text

DIM = 1 << 15
MAX_CHARS = 4000
_WORD = re.compile(r"(?u)\b\w\w+\b")
_MASK = DIM - 1


def _block(counts: Counter[str], prefix: str, out: npt.NDArray[np.float32]) -> None:
    """Add the unit-length hashed block of ``counts`` to ``out`` (vectorised: the hashing
    is per n-gram, the sums and the scaling are numpy's)."""
    if not counts:
        return
    size = len(counts)
    # crc32(prefix + gram) continues crc32(prefix): all in C, no per-gram Python frame
    seed = zlib.crc32(prefix.encode())
    h = np.fromiter(map(zlib.crc32, map(str.encode, counts), repeat(seed)), np.uint32, size)
    n = np.fromiter(counts.values(), np.float64, size)
    weight = (1.0 + np.log(n)) * np.where((h >> 20) & 1, 1.0, -1.0)
    columns, where = np.unique(h & _MASK, return_inverse=True)
    summed = np.bincount(where, weights=weight, minlength=len(columns))
    norm = math.sqrt(float(summed @ summed)) or 1.0
    out[columns] += (summed / norm).astype(np.float32)


def _fill(text: str, word: npt.NDArray[np.float32], char: npt.NDArray[np.float32]) -> None:
    """Add the word block of ``text`` to ``word`` and its char block to ``char``."""
    t = " ".join(unicodedata.normalize("NFKC", bound_text(text, MAX_CHARS)).lower().split())
    words = _WORD.findall(t)
    grams = Counter(words)
    grams.update(f"{a} {b}" for a, b in itertools.pairwise(words))
    _block(grams, "w:", word)
    chars: Counter[str] = Counter()
    for n in range(2, 6):
        chars.update(map(t.__getitem__, map(slice, range(len(t) - n + 1), range(n, len(t) + 1))))
    _block(chars, "c:", char)


def features(text: str) -> npt.NDArray[np.float32]:
    """The vector of one prompt (see the module docstring)."""
    out = np.zeros(DIM, dtype=np.float32)
    _fill(text, out, out)
    return out


def blocks(text: str) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    """The word block and the char block of one prompt apart (their sum is
    :func:`features`)."""
    word = np.zeros(DIM, dtype=np.float32)
    char = np.zeros(DIM, dtype=np.float32)
    _fill(text, word, char)
    return word, char


class NgramEncoder:
    """The ``ngram`` encoder (the ``Encoder`` contract; stateless)."""

    id = "ngram"

    def fit(self, texts: Sequence[str]) -> NgramEncoder:
        return self

    def encode(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        out = np.zeros((len(texts), DIM), dtype=np.float32)
        for i, text in enumerate(texts):
            out[i] = features(text)
        return out

    def state(self) -> dict[str, npt.NDArray[Any]]:
        return {}
