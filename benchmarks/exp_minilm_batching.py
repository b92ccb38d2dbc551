"""Measure: what a batched MiniLM call saves per prompt on the request-path runtime.

    python benchmarks/exp_minilm_batching.py [--short 256] [--long 128]   # ~1 min

The graph and runtime are the gateway's (``polyroute.embed_onnx.minilm_runtime``: fp32
ONNX, one ONNX Runtime thread, 256 tokens at most).  Two prompt sets: CLINC150
validation queries (short: about 10 tokens) and distinct prompts of the packaged
dcrouter sample cut to 600 characters (long: about 150 tokens).  Each set is encoded in
batches of 1, 4, 8, 16 and 32 (the runtime's memory of recent texts bypassed), after one
warm-up call; printed: CPU and wall time per prompt.  A measurement, not a change: it
is why the engine's encoder batchers (``polyroute.batching.EncoderBatchers``) run side by side on
every core rather than counting on large batches.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable

from _cache_data import DATA, DCROUTER

from polyroute.embed import cache_dir
from polyroute.embed_onnx import minilm_runtime

SIZES = (1, 4, 8, 16, 32)


def per_prompt(
    encode: Callable[[list[str]], object], texts: list[str], size: int
) -> tuple[float, float]:
    """CPU and wall milliseconds per prompt, encoding ``texts`` in batches of ``size``."""
    cpu, wall = time.process_time(), time.perf_counter()
    for i in range(0, len(texts), size):
        encode(texts[i : i + size])
    n = len(texts)
    return 1000 * (time.process_time() - cpu) / n, 1000 * (time.perf_counter() - wall) / n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--short", type=int, default=256, help="CLINC150 queries")
    parser.add_argument("--long", type=int, default=128, help="dcrouter prompts (600 chars)")
    args = parser.parse_args()
    runtime = minilm_runtime(cache_dir(), "subprocess")
    if runtime is None:
        raise SystemExit("no MiniLM ONNX graph: run scripts/install first")
    runtime.encode(["warm up"])
    clinc = [json.loads(line)["text"] for line in (DATA / "validation.jsonl").open()]
    long = list(dict.fromkeys(json.loads(line)["prompt"][:600] for line in DCROUTER.open()))
    sets = {"CLINC150 queries": clinc[: args.short], "dcrouter, 600 chars": long[: args.long]}
    print("| prompts | batch | CPU ms / prompt | wall ms / prompt |")
    print("|---|---|---|---|")
    for name, texts in sets.items():
        for size in SIZES:
            cpu, wall = per_prompt(runtime._encode, texts, size)  # no memo
            print(f"| {name} ({len(texts)}) | {size} | {cpu:.2f} | {wall:.2f} |")


if __name__ == "__main__":
    main()
