"""The data of ``exp_jailbreak_tokens.py``: every set's texts, labels, template groups,
cached MiniLM token states and n-gram vectors (:class:`Set`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from _exp_jb_common import INJECTION, LOOKALIKES, PROBES, SHARED, rows

BENIGN_B = Path("/tmp/jbx/benign.jsonl")


def all_texts() -> dict[str, list[str]]:
    from polyroute.eval.io import load_dataset

    out = {s: [r["text"] for r in rows(INJECTION / f"{s}.jsonl")] for s in ("train", "validation")}
    out["L"] = [r["text"] for r in rows(LOOKALIKES)]
    out["B"] = [r["text"] for r in rows(BENIGN_B)]
    out["probes"] = [r["text"] for r in rows(PROBES)]
    out["dcrouter"] = list(dict.fromkeys(load_dataset("dcrouter").prompts))[:1500]
    clinc = [r["text"] for r in rows(SHARED / "guards/domains/clinc150/train.jsonl")][::15]
    out["clinc"] = clinc[:1500]
    return out


# --------------------------------------------------------------------------- data


@dataclass
class Set:
    name: str
    texts: list[str]
    y: Any  # bool [n]
    groups: list[str]
    sets: list[str]
    x: Any  # float16 token states [tokens x 384]
    off: Any  # int64 [n + 1]
    ngram: Any  # sparse ngram vectors (word + char blocks) [n x DIM]
    src: Any = None  # augmentation rows only: their two source train rows [n x 2]


def load_all() -> dict[str, Set]:
    from _exp_jbt_states import cached_states
    from exp_jailbreak_benign import load as ngram_load

    texts = all_texts()
    meta: dict[str, tuple[Any, list[str], list[str]]] = {}
    for s in ("train", "validation"):
        r = rows(INJECTION / f"{s}.jsonl")
        meta[s] = ([x["label"] == "injection" for x in r], [""] * len(r), [s] * len(r))
    for s, path in (("L", LOOKALIKES), ("B", BENIGN_B)):
        r = rows(path)
        meta[s] = ([False] * len(r), [x["group"] for x in r], [s] * len(r))
    p = rows(PROBES)
    meta["probes"] = ([x["label"] == "injection" for x in p], [""] * len(p), [x["set"] for x in p])
    for s in ("dcrouter", "clinc"):
        n = len(texts[s])
        meta[s] = ([False] * n, [""] * n, [s] * n)
    out = {}
    for name, t in texts.items():
        y, groups, sets = meta[name]
        x, off = cached_states(name, t)
        ng = ngram_load(name, t, y, groups, sets)  # reads /tmp/jbx/feat_NAME.npz
        assert ng.word.shape[0] == len(t), name
        out[name] = Set(name, t, np.asarray(y, dtype=bool), groups, sets, x, off, ng.both)
    return out


def add_augmentation(data: dict[str, Set], n: int = 4000) -> None:
    """POST-HOC (added after the probes were scored): ``data["A"]`` = ``n`` concatenations
    of two train rows (``bench_jailbreak_heldout.augment``: benign + injection in either
    order is an injection, benign + benign is benign), their token states recomputed."""
    from _exp_jbt_states import cached_states
    from bench_jailbreak_heldout import augment, read_split

    aug = augment(read_split(INJECTION / "train.jsonl"), n)
    x, off = cached_states(f"aug{n}", aug.split.texts)
    k = len(aug.split.texts)
    data["A"] = Set("A", aug.split.texts, np.asarray(aug.split.positive, dtype=bool),
                    [""] * k, ["A"] * k, x, off, None, np.asarray(aug.src))  # fmt: skip
