"""Measure: the request-path MiniLM graph as fp32, int8 (per channel, per tensor) and with
ONNX Runtime's BERT fusions: CPU a prompt, and how far its vectors move.

    python benchmarks/exp_minilm_int8.py [--prompts 200] [--cache]  # ~2-4 min; /tmp/minilm_int8

The graph is the one the gateway runs (``polyroute.embed_onnx``: exported once into the
embedding cache); each variant runs on ``MiniLMRuntime`` as served (one thread, one
prompt a run, 128 tokens), on distinct dcrouter prompts, after 10 warm-up prompts.
``cos`` compares each prompt's unit vector with the fp32 graph's.  ``--cache`` also runs
the semantic cache's plain-cosine rule (0.86, guards on, as ``bench_cache.py``) on the
CLINC150 validation stream (all intents, seed 300) and the distinct report half, with the
fp32 and the int8-per-channel vectors.  A measurement, not a change: the shipped graph
stays fp32 (every calibrated threshold and trained model on ``minilm`` was fit on its
vectors).
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

import numpy as np

from polyroute.embed import cache_dir
from polyroute.embed_onnx import MiniLMRuntime, minilm_runtime, onnx_path
from polyroute.eval.io import load_dataset

OUT = Path("/tmp/minilm_int8")


def variants(src: Path) -> dict[str, Path]:
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.transformers.optimizer import optimize_model

    logging.getLogger().setLevel(logging.ERROR)  # the quantiser's advice goes to root
    OUT.mkdir(exist_ok=True)
    out = {"fp32 (shipped)": src}
    for name, per_channel in (("int8 per channel", True), ("int8 per tensor", False)):
        path = OUT / f"{name.replace(' ', '_')}.onnx"
        quantize_dynamic(str(src), str(path), weight_type=QuantType.QInt8, per_channel=per_channel)
        out[name] = path
    fused = OUT / "fused.onnx"
    optimize_model(str(src), model_type="bert", num_heads=12, hidden_size=384).save_model_to_file(
        str(fused)
    )
    out["fp32, BERT fusions"] = fused
    path = OUT / "fused_int8.onnx"
    quantize_dynamic(
        str(fused), str(path), weight_type=QuantType.QInt8, per_channel=True,
        extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
    )  # fmt: skip
    out["BERT fusions + int8 per channel"] = path
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    ap.add_argument("--prompts", type=int, default=200)
    ap.add_argument("--cache", action="store_true", help="also the cache rule, fp32 vs int8")
    args = ap.parse_args()
    if minilm_runtime(cache_dir()) is None:  # exports the graph once if missing
        raise SystemExit("MiniLM needs the 'learn' extra")
    prompts = list(dict.fromkeys(load_dataset("dcrouter").prompts))[: args.prompts]
    ref: np.ndarray | None = None
    found = variants(onnx_path(cache_dir()))
    print("| graph | CPU a prompt | cos to fp32: min | median | size |")
    print("|---|---|---|---|---|")
    for name, path in found.items():
        rt = MiniLMRuntime.load(path, threads=1, max_tokens=128)
        for p in prompts[:10]:
            rt._encode([p])
        t0 = time.process_time()
        vecs = np.concatenate([rt._encode([p]) for p in prompts])
        ms = (time.process_time() - t0) / len(prompts) * 1000
        vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
        ref = vecs if ref is None else ref
        cos = (vecs * ref).sum(1)
        size = path.stat().st_size / 2**20
        print(f"| {name} | {ms:.2f} ms | {cos.min():.4f} | {np.median(cos):.4f} | {size:.0f} MiB |")
    if args.cache:
        cache_rows({k: found[k] for k in ("fp32 (shipped)", "int8 per channel")})


def cache_rows(graphs: dict[str, Path]) -> None:
    """The shipped plain-cosine rule on one CLINC150 stream and the distinct report half."""
    import sys

    sys.path.insert(0, str(Path(__file__).parent))
    from _cache_data import distinct_prompts, intent_ids, load_split, make_stream
    from exp_cache_trained import SIM, Stream, run_all

    ids = intent_ids()
    val = load_split("validation", ids)
    off, _, report = distinct_prompts()
    rule = ("raw", 0.0, SIM.threshold)
    print(f"\n| graph | CLINC150 validation: hits / wrong (cosine {SIM.threshold}) "
          "| distinct report half: wrong |")  # fmt: skip
    print("|---|---|---|")
    for name, path in graphs.items():
        rt = MiniLMRuntime.load(path, threads=1)  # the cache reads 256 tokens

        def enc(texts: list[str], rt: MiniLMRuntime = rt) -> np.ndarray:
            x = np.concatenate([rt._encode([t]) for t in texts])
            out: np.ndarray = x / np.linalg.norm(x, axis=1, keepdims=True)
            return out

        stream = Stream.of(enc(val.texts), val, make_stream(val, set(ids.values()), None, 300))
        h, w, n = run_all(stream, None, [rule])[rule]
        _, dw, dn = run_all(Stream.of(enc(off.texts), off, report), None, [rule])[rule]
        print(f"| {name} | {h / n:.1%} / {w / n:.2%} | {dw / dn:.2%} |")


if __name__ == "__main__":
    main()
