"""The data of ``bench_cache.py``: CLINC150 splits and streams, the distinct off-CLINC
prompts, the hand-written swap pairs, and their cached embeddings (read from
``../shared`` at run time, never copied)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

import numpy as np
from _harness import HERE

from polyroute.embed import cache_dir, make_encoder

DATA = HERE.parents[1] / "shared" / "data" / "guards" / "domains" / "clinc150"
INJECTION = HERE.parents[1] / "shared" / "data" / "guards" / "injection" / "validation.jsonl"
DCROUTER = HERE.parents[0] / "polyroute" / "data" / "dcrouter" / "train.jsonl"
#: seed of the calibration / report halving of the distinct prompts
HALF_SEED = 7
#: hand-written word-order and one-term-swap pairs (not from any dataset): A and B ask for
#: different answers, so B must not hit A.  Reported (``swapped``), never used to choose.
SWAPPED: tuple[tuple[str, str], ...] = (
    ("flights from new york to los angeles", "flights from los angeles to new york"),
    ("how do i convert celsius to fahrenheit", "how do i convert fahrenheit to celsius"),
    ("convert euros to dollars", "convert dollars to euros"),
    (
        "translate this sentence from english to french",
        "translate this sentence from french to english",
    ),
    ("is the train from boston to chicago on time", "is the train from chicago to boston on time"),
    (
        "transfer money from my checking account to my savings account",
        "transfer money from my savings account to my checking account",
    ),
    ("convert a string to an integer in java", "convert an integer to a string in java"),
    ("rename the column price to cost in pandas", "rename the column cost to price in pandas"),
    ("send the report to alice and copy bob", "send the report to bob and copy alice"),
    ("why does the cat chase the dog", "why does the dog chase the cat"),
    ("did microsoft acquire github", "did github acquire microsoft"),
    ("how do i add a user to a group in linux", "how do i remove a user from a group in linux"),
    ("how do i upload a file to google drive", "how do i download a file from google drive"),
    (
        "write a python function to find the gcd of two numbers",
        "write a python function to find the lcm of two numbers",
    ),
    (
        "write a sql query to find the maximum salary",
        "write a sql query to find the minimum salary",
    ),
    ("sort a list in ascending order in python", "sort a list in descending order in python"),
    (
        "write a function that returns the first element of a list",
        "write a function that returns the last element of a list",
    ),
    (
        "write a python function to check whether a number is even",
        "write a python function to check whether a number is odd",
    ),
    (
        "write a regex that matches lowercase letters",
        "write a regex that matches uppercase letters",
    ),
    (
        "compute the area of a circle given its radius",
        "compute the circumference of a circle given its radius",
    ),
    (
        "how to encrypt a file with a password on linux",
        "how to decrypt a file with a password on linux",
    ),
    ("what is the capital of austria", "what is the capital of australia"),
    ("what are the side effects of ibuprofen", "what are the side effects of acetaminophen"),
    ("how many calories are in an apple", "how many calories are in a banana"),
    (
        "what is the boiling point of water in fahrenheit",
        "what is the freezing point of water in fahrenheit",
    ),
    ("what time does the bank open on saturday", "what time does the bank close on saturday"),
    ("turn the living room lights on", "turn the living room lights off"),
    ("set an alarm for monday morning", "set an alarm for friday morning"),
    ("how do i increase the font size in word", "how do i decrease the font size in word"),
    ("recipe for chocolate cake without eggs", "recipe for chocolate cake with eggs"),
    ("list the pros of remote work", "list the cons of remote work"),
    (
        "summarize the plot of the first harry potter book",
        "summarize the plot of the last harry potter book",
    ),
)


@dataclass(frozen=True)
class Split:
    texts: list[str]
    labels: np.ndarray  # intent id >= 0; each oos row a unique negative id


def intent_ids() -> dict[str, int]:
    """CLINC150's 150 intents (``oos`` aside), numbered in sorted order."""
    names = {json.loads(line)["intent"] for line in (DATA / "train.jsonl").open()} - {"oos"}
    return {name: i for i, name in enumerate(sorted(names))}


def load_split(name: str, intent_ids: dict[str, int]) -> Split:
    rows = [json.loads(line) for line in (DATA / f"{name}.jsonl").open()]
    labels = [
        -1 - i if r["intent"] == "oos" else intent_ids[r["intent"]] for i, r in enumerate(rows)
    ]
    return Split([r["text"] for r in rows], np.asarray(labels))


def embed(encoder: str, texts: list[str]) -> np.ndarray:
    """Vectors of ``texts``, cached as one .npy per (encoder, texts) in the embedding cache."""
    digest = hashlib.sha256("\x00".join([encoder, *texts]).encode()).hexdigest()[:16]
    path = cache_dir() / "bench_cache" / f"{encoder}-{digest}.npy"
    if path.is_file():
        return np.asarray(np.load(path, allow_pickle=False), dtype=np.float32)
    vectors = make_encoder(encoder, use_cache=False).encode(texts)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, vectors, allow_pickle=False)
    return vectors


def make_stream(split: Split, intents: set[int], per_intent: int | None, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    picked = [i for i in range(len(split.labels)) if split.labels[i] < 0]
    for intent in sorted(intents):
        rows = np.flatnonzero(split.labels == intent)
        if per_intent is not None:
            rows = rng.choice(rows, per_intent, replace=False)
        picked += rows.tolist()
    return rng.permutation(np.asarray(picked))


def ceiling(labels: np.ndarray) -> float:
    seen: set[int] = set()
    repeats = 0
    for y in labels.tolist():
        repeats += y in seen
        seen.add(y)
    return repeats / len(labels)


def distinct_prompts() -> tuple[Split, np.ndarray, np.ndarray]:
    """Off-CLINC prompts, each its own request (every hit is wrong): 1,500 dcrouter prompts
    (seeded sample) and the benign prompts of the injection validation split; with the
    stream orders of its two disjoint seeded halves (calibration, report)."""
    dc = [json.loads(line)["prompt"] for line in DCROUTER.open()]
    picked = np.random.default_rng(0).choice(len(dc), 1500, replace=False)
    rows = [json.loads(line) for line in INJECTION.open()]
    benign = sorted({r["text"] for r in rows if r["label"] == "benign"})
    texts = [dc[i] for i in sorted(picked.tolist())] + benign
    order = np.random.default_rng(HALF_SEED).permutation(len(texts))
    half = len(texts) // 2
    return Split(texts, np.arange(len(texts))), order[:half], order[half:]


def swapped_pairs(encoder: str) -> tuple[np.ndarray, Split]:
    """Vectors and texts of :data:`SWAPPED`: pair k is rows 2k (A, cached) and 2k+1 (B)."""
    texts = [t for pair in SWAPPED for t in pair]
    return embed(encoder, texts), Split(texts, np.arange(len(texts)))
