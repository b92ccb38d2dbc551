"""Choose a family model's rule (``raw_threshold``, ``threshold``) on the user's own rows.

Cross-fitted, so the rule is judged by prompts its model never saw: each group's rows are
split in two seeded halves; a model fitted on one half scores a stream of the other half
(the ``singletons`` rows, each its own request, mixed in), and the reverse.  Every rule of
the grid runs both streams through a real :class:`~polyroute.cache.MemoryIndex` (guards
and all): a hit is *wrong* when the matched entry is another request.  ``background``
prompts (unrelated traffic, each its own request, so every hit is wrong) run through an
index of each half model too.  The rule chosen has the most hits among those whose wrong
hits stay within ``cap`` of the requests on the pooled streams *and* on the background;
ties go to the fewer wrong hits, then to the higher thresholds.  Without a background the
rule is checked on the user's rows alone (say so: unrelated prompts may then hit).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import numpy.typing as npt

from polyroute.cache.families import Families, train_families
from polyroute.cache.memory import MemoryIndex
from polyroute.cache.similarity import Similarity, with_families
from polyroute.errors import ConfigError

RAW_GRID = (0.86, 0.88, 0.90, 0.92, 0.94)
FAMILY_GRID = (0.93, 0.94, 0.95, 0.96, 0.97, 0.98, 0.99)
#: the wrong-hit cap of the choice (half the 1 % target: a calibration stream holds
#: half the distinct requests of the full one, and wrong hits grow with them)
CAP = 0.005
Rule = tuple[float, float]  # raw_threshold, threshold


@dataclass(frozen=True)
class Tally:
    hits: int = 0
    wrong: int = 0
    requests: int = 0

    def __add__(self, other: Tally) -> Tally:
        return Tally(
            self.hits + other.hits, self.wrong + other.wrong, self.requests + other.requests
        )

    def rate(self, n: int) -> float:
        return n / self.requests if self.requests else 0.0


@dataclass(frozen=True)
class Calibration:
    rule: Rule | None  #: None when no rule of the grid meets the cap
    streams: dict[Rule, Tally]
    background: dict[Rule, Tally]

    def summary(self) -> dict[str, object]:
        if self.rule is None:
            return {"rule": None}
        s, b = self.streams[self.rule], self.background[self.rule]
        return {
            "raw_threshold": self.rule[0],
            "threshold": self.rule[1],
            "cross_fitted_hits": round(s.rate(s.hits), 4),
            "cross_fitted_wrong": round(s.rate(s.wrong), 4),
            "requests": s.requests,
            "background_wrong": round(b.rate(b.wrong), 4) if b.requests else None,
            "background_requests": b.requests,
        }


async def _run(sim: Similarity, x: npt.NDArray[np.float32], texts: Sequence[str],
               labels: Sequence[int], order: Sequence[int]) -> Tally:  # fmt: skip
    index = MemoryIndex(sim, max_entries=max(1, len(order)))
    hits = wrong = 0
    for i in order:
        hit = await index.lookup("calibrate", x[i], texts[i])
        if hit is None:
            await index.add("calibrate", x[i], texts[i], str(labels[i]).encode())
        else:
            hits += 1
            wrong += int(hit.answer.decode()) != labels[i]
    return Tally(hits, wrong, len(order))


def _halves(groups: Sequence[str], seed: int) -> list[npt.NDArray[np.intp]]:
    rng = np.random.default_rng(seed)
    first: list[int] = []
    second: list[int] = []
    for g in sorted(set(groups)):
        rows = rng.permutation([i for i, name in enumerate(groups) if name == g])
        cut = len(rows) // 2
        first += rows[:cut].tolist()
        second += rows[cut:].tolist()
    return [np.asarray(first, np.intp), np.asarray(second, np.intp)]


def calibrate_families(
    base: Similarity,
    x: npt.ArrayLike,
    texts: Sequence[str],
    groups: Sequence[str],
    *,
    singletons: tuple[npt.ArrayLike, Sequence[str]] | None = None,
    background: tuple[npt.ArrayLike, Sequence[str]] | None = None,
    l2: float = 1e-4,
    weight: float = 0.9,
    cap: float = CAP,
    seed: int = 0,
) -> Calibration:
    """The rule for a family model of ``groups`` (see the module doc)."""
    xs = np.asarray(x, dtype=np.float32)
    sizes = Counter(groups)
    if len(sizes) < 2 or min(sizes.values()) < 2:
        raise ConfigError("train-cache --calibrate: expected >= 2 groups of >= 2 rows each")
    names = {g: i for i, g in enumerate(sorted(set(groups)))}
    labels = [names[g] for g in groups]
    sx, stexts = (np.zeros((0, xs.shape[1]), np.float32), []) if singletons is None else (
        np.asarray(singletons[0], np.float32), list(singletons[1]))  # fmt: skip
    bx, btexts = (np.zeros((0, xs.shape[1]), np.float32), []) if background is None else (
        np.asarray(background[0], np.float32), list(background[1]))  # fmt: skip
    rules = [(r, t) for r in RAW_GRID for t in FAMILY_GRID]
    streams = dict.fromkeys(rules, Tally())
    back = dict.fromkeys(rules, Tally())
    halves = _halves(list(groups), seed)
    rng = np.random.default_rng(seed + 1)
    for h, held in enumerate(halves):
        fit = halves[1 - h]
        model = train_families(xs[fit], [groups[i] for i in fit], encoder=base.encoder, l2=l2)
        # the held-out half's rows, then its share of the singletons (each its own label)
        own = sx[h::2]
        vx = np.concatenate([xs[held], own])
        vtexts = [texts[i] for i in held] + stexts[h::2]
        vlabels = [labels[i] for i in held] + [-1 - k for k in range(len(own))]
        order = rng.permutation(len(vx)).tolist()
        for rule in rules:
            sim = _with_rule(base, model, rule, weight)
            streams[rule] += asyncio.run(_run(sim, vx, vtexts, vlabels, order))
            if len(bx):
                every = list(range(len(bx)))
                back[rule] += asyncio.run(_run(sim, bx, btexts, [-1 - k for k in every], every))
    ok = [
        r
        for r in rules
        if streams[r].rate(streams[r].wrong) <= cap and back[r].rate(back[r].wrong) <= cap
    ]
    best = max(ok, key=lambda r: (streams[r].hits, -streams[r].wrong, r), default=None)
    return Calibration(best, streams, back)


def _with_rule(base: Similarity, model: Families, rule: Rule, weight: float) -> Similarity:
    return with_families(base, replace(model, raw_threshold=rule[0], threshold=rule[1],
                                       weight=weight))  # fmt: skip
