"""The semantic cache's default similarity (the trained family model) against the plain
calibrated cosine, through the real indexes, on CLINC150 paraphrase streams.

Same data, streams and scoring as ``bench_cache.py`` (its docstring): same-intent queries
are rewordings of one request, every ``oos`` row its own request; a hit is *wrong* when
the matched entry is another request; a miss adds the request.  Two rules, both with all
the shipped guards:

- ``cosine``: ``DEFAULTS["minilm"]`` (cosine >= 0.86), the default before the families;
- ``families``: the shipped family model (``polyroute/data/cache/families``, trained on
  CLINC150's *train* split) with its rule (raw >= 0.90, or 0.9 family + 0.1 raw >= 0.96).

Streams: ``seen families``: the validation split over all 150 intents (new queries of
families the model was trained on; 3 seeds; ``sparse`` = 4 queries per intent) through
``MemoryIndex`` (and ``RedisIndex`` for seed 300); ``unseen families``: leave-intent-out,
``bench_cache``'s 2 folds of 75 intents: a family model trained by ``train_families`` on
the train rows of one fold's intents (the shipped rule's numbers, nothing re-chosen),
run on the validation stream of the other fold's intents + the 100 validation ``oos``
rows; ``distinct``: 2,550 off-CLINC prompts (dcrouter + benign injection prompts), each
its own request (every hit wrong), both halves (the calibration half constrained the
rule's choice in ``exp_cache_trained.py``; the report half did not); ``swapped``: the
hand-written swap pairs, each in a fresh index.  Lookup latency is per lookup in the memory index.

    POLYROUTE_CACHE_DIR=... python benchmarks/bench_cache_families.py [--redis URL|'']
"""

from __future__ import annotations

import argparse
import asyncio
import uuid
from dataclasses import replace

import numpy as np
from _cache_data import (
    distinct_prompts,
    embed,
    intent_ids,
    load_split,
    make_stream,
    swapped_pairs,
)
from bench_cache import FOLDS, drop_keys, pct, through_index, through_pairs

from polyroute.cache import DEFAULTS, MemoryIndex, Similarity
from polyroute.cache.families import default_families_dir, load_families, train_families
from polyroute.cache.redis_index import RedisIndex
from polyroute.cache.similarity import with_families

SEEDS = (300, 301, 302)


def row(stream: str, rule: str, backend: str, scored: object, lat: list[float]) -> str:
    hits, wrong = scored.rates  # type: ignore[attr-defined]
    n = scored.requests  # type: ignore[attr-defined]
    return (
        f"| {stream} | {rule} | {backend} | {n} | {hits:.1%} | {wrong:.2%} "
        f"| {pct(lat, 50):.3f} | {pct(lat, 99):.3f} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/15", help="'' to skip Redis")
    args = parser.parse_args()
    ids = intent_ids()
    train, val = load_split("train", ids), load_split("validation", ids)
    xt, xv = embed("minilm", train.texts), embed("minilm", val.texts)
    cosine = DEFAULTS["minilm"]
    rules: dict[str, Similarity] = {
        "cosine": cosine,
        "families": with_families(cosine, load_families(default_families_dir())),
    }
    lines = [
        "| stream | rule | index | requests | hit rate | wrong-hit rate "
        "| lookup p50 ms | lookup p99 ms |",
        "|---|---|---|---|---|---|---|---|",
    ]
    everything = set(range(len(ids)))
    for seed in SEEDS:
        for label, per in (("all 150 intents", None), ("sparse, 4 per intent", 4)):
            if per is not None and seed != SEEDS[0]:
                continue
            order = make_stream(val, everything, per, seed)
            for name, sim in rules.items():
                index = MemoryIndex(sim, max_entries=100_000)
                scored, lat = asyncio.run(through_index(index, xv, val, order))
                lines.append(
                    row(f"seen families: {label}, seed {seed}", name, "memory", scored, lat)
                )
                if args.redis and seed == SEEDS[0] and per is None:
                    prefix = f"bench:{uuid.uuid4().hex}:"
                    redis = RedisIndex(sim, url=args.redis, prefix=prefix, max_entries=5000)
                    scored, lat = asyncio.run(through_index(redis, xv, val, order))
                    asyncio.run(drop_keys(args.redis, prefix))
                    lines.append(
                        row(f"seen families: {label}, seed {seed}", name, "redis", scored, lat)
                    )
    perm = np.random.default_rng(0).permutation(len(ids))
    folds = [set(perm[f::FOLDS].tolist()) for f in range(FOLDS)]
    shipped = rules["families"].families
    assert shipped is not None
    for f in range(FOLDS):
        seen = sorted(set(range(len(ids))) - folds[f])
        rows = np.flatnonzero(np.isin(train.labels, seen))
        fam = train_families(xt[rows], [str(y) for y in train.labels[rows]], encoder="minilm")
        fam = replace(fam, raw_threshold=shipped.raw_threshold, weight=shipped.weight,
                      threshold=shipped.threshold)  # fmt: skip
        order = make_stream(val, folds[f], None, 200 + f)
        for name, sim in (("cosine", cosine), ("families", with_families(cosine, fam))):
            scored, lat = asyncio.run(through_index(MemoryIndex(sim), xv, val, order))
            lines.append(row(f"unseen families: fold {f + 1}", name, "memory", scored, lat))
    off, off_cal, off_report = distinct_prompts()
    xd = embed("minilm", off.texts)
    for half, order in (("report half", off_report), ("calibration half", off_cal)):
        for name, sim in rules.items():
            scored, lat = asyncio.run(through_index(MemoryIndex(sim), xd, off, order))
            lines.append(row(f"distinct, {half}", name, "memory", scored, lat))
    xs, pairs = swapped_pairs("minilm")
    for name, sim in rules.items():
        scored, lat = asyncio.run(through_pairs(sim, xs, pairs))
        lines.append(row("swapped pairs", name, "memory", scored, lat))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
