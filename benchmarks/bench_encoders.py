"""Encoder speed and fidelity: the static encoder distilled from MiniLM vs MiniLM itself.

Speed: distinct dcrouter prompts cut to 600 characters, encoded one call per prompt on
one thread (ONNX Runtime with one intra-op thread; ``RAYON_NUM_THREADS=1`` for the
tokenizer), as the gateway encodes a request; plus the static encoder on one batch.
Build: the one-off distillation (every vocabulary token through MiniLM, PCA).
Fidelity: on all dcrouter prompts, how well static-vector cosines track MiniLM's:
recall@10 of each prompt's 10 MiniLM nearest neighbours (1500 sampled queries) and
the Pearson correlation of pairwise cosines, for several sizes and weightings.

    python benchmarks/bench_encoders.py [--n 500] [--no-write]
"""

from __future__ import annotations

import os

os.environ.setdefault("RAYON_NUM_THREADS", "1")  # before tokenizers loads: one thread

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from _harness import HERE, machine_facts, pct

from polyroute.embed import MiniLMEncoder, cache_dir
from polyroute.embed_onnx import minilm_runtime
from polyroute.embed_static import (
    StaticTable,
    cached_table,
    encode_static,
    run_teacher,
    table_from_teacher,
)
from polyroute.eval.io import load_dataset, resolve_data_path

RESULTS = HERE / "RESULTS_encoders.md"
PROMPT_CHARS = 600
VARIANTS = ((128, True), (256, True), (384, True), (256, False))
#: the hand-kept section (router quality from ``polyroute eval``) that survives reruns
KEPT = "## Router quality"


def per_call_ms(encode: Any, texts: list[str]) -> tuple[float, float, float]:
    """Median and p99 wall ms of one call per prompt, and CPU ms per prompt."""
    for t in texts[:20]:
        encode([t])  # warm-up
    wall = []
    cpu0 = time.process_time()
    for t in texts:
        t0 = time.perf_counter()
        encode([t])
        wall.append((time.perf_counter() - t0) * 1000)
    cpu = (time.process_time() - cpu0) * 1000 / len(texts)
    return pct(wall, 50), pct(wall, 99), cpu


def speed(texts: list[str], table: StaticTable) -> list[str]:
    minilm = MiniLMEncoder(use_cache=False)
    minilm.torch_free = True
    rows = [
        ("minilm (ONNX Runtime, 1 thread)", per_call_ms(minilm.encode, texts)),
        ("static (256 dims)", per_call_ms(lambda b: encode_static(table, b), texts)),
    ]
    encode_static(table, texts)  # warm-up
    batch_us = 1e9
    for _ in range(3):
        t0 = time.perf_counter()
        encode_static(table, texts)
        batch_us = min(batch_us, (time.perf_counter() - t0) * 1e6 / len(texts))
    lines = ["| encoder | p50 ms / call | p99 ms / call | CPU ms / prompt | prompts/s (1 core) |",
             "| --- | --- | --- | --- | --- |"]  # fmt: skip
    for name, (p50, p99, cpu) in rows:
        lines.append(f"| {name} | {p50:.3f} | {p99:.3f} | {cpu:.3f} | {1000 / cpu:,.0f} |")
    lines.append(f"| static, one batch of {len(texts)} | | | {batch_us / 1000:.3f} | "
                 f"{1e6 / batch_us:,.0f} |")  # fmt: skip
    return lines


def fidelity(prompts: list[str], teacher: Any) -> list[str]:
    truth_z = MiniLMEncoder().encode(prompts)  # from the on-disk cache when warm
    rng = np.random.default_rng(0)
    queries = rng.choice(len(prompts), min(1500, len(prompts)), replace=False)
    sims = truth_z[queries] @ truth_z.T
    truth = np.argsort(-sims, axis=1)[:, 1:11]
    pairs = rng.choice(sims.size, 200_000, replace=False)
    lines = ["| dims | SIF weights | recall@10 of MiniLM neighbours | Pearson r of cosines |",
             "| --- | --- | --- | --- |"]  # fmt: skip
    for dims, weighted in VARIANTS:
        z = encode_static(table_from_teacher(teacher, dims, weighted), prompts)
        got_sims = z[queries] @ z.T
        got = np.argsort(-got_sims, axis=1)[:, 1:11]
        recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(truth, got, strict=True)])
        r = np.corrcoef(got_sims.ravel()[pairs], sims.ravel()[pairs])[0, 1]
        lines.append(f"| {dims} | {'yes' if weighted else 'no'} | {recall:.3f} | {r:.3f} |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=500, help="prompts timed per encoder")
    parser.add_argument("--no-write", action="store_true", help=f"do not write {RESULTS.name}")
    args = parser.parse_args()
    data = load_dataset(resolve_data_path("dcrouter"))
    texts = list(dict.fromkeys(p[:PROMPT_CHARS] for p in data.prompts))[: args.n]
    runtime = minilm_runtime(cache_dir(), "subprocess")
    if runtime is None:
        raise SystemExit("MiniLM on ONNX Runtime is unavailable")
    t0 = time.perf_counter()
    teacher = run_teacher(runtime.session)
    t1 = time.perf_counter()
    table_from_teacher(teacher)
    t2 = time.perf_counter()
    size = sum(a.nbytes for a in cached_table(cache_dir()).arrays().values()) / 2**20
    build = [f"Distillation (once; cached in the embedding cache): teacher pass over "
             f"{len(teacher.ids)} tokens {t1 - t0:.1f} s, PCA {t2 - t1:.1f} s; "
             f"the 256-dim table is {size:.1f} MiB (float16)."]  # fmt: skip
    table = cached_table(cache_dir())
    body = [
        "## Speed", "", *speed(texts, table), "",
        "## Build", "", *build, "",
        "## Fidelity to MiniLM (dcrouter, all prompts)", "",
        *fidelity(data.prompts, teacher), "",
    ]  # fmt: skip
    command = "python benchmarks/bench_encoders.py" + "".join(" " + a for a in sys.argv[1:])
    text = "\n".join([
        "# Encoders: static (distilled from MiniLM) vs MiniLM", "",
        "Produced by:", "", "```", command, "```", "",
        f"{len(texts)} distinct dcrouter prompts cut to {PROMPT_CHARS} characters, one call "
        "per prompt, one thread.  The machine is shared: rerun before comparing small "
        "differences.", "",
        *body, "Machine:", "", *(f"- {fact}" for fact in machine_facts()), "",
    ])  # fmt: skip
    print(text)
    if not args.no_write:
        old = RESULTS.read_text() if RESULTS.is_file() else ""
        kept = old[old.find(KEPT) :] if KEPT in old else ""
        Path(RESULTS).write_text(text + ("\n" + kept if kept else ""))


if __name__ == "__main__":
    main()
