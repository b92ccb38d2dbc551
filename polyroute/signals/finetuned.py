"""A fine-tuned MiniLM as a signal's encoder (``encoder: finetuned`` in a model's manifest).

The model directory holds, beside ``manifest.json`` and ``arrays.npz`` (the linear head,
as for every signal model), ``encoder.onnx``: all-MiniLM-L6-v2 with every weight
fine-tuned for the signal, mean-pooled, int8-quantised (``polyroute train-signal
jailbreak --encoder finetuned``, see ``polyroute.signals.finetune_train``).  It reads
MiniLM's tokenizer and runs on ONNX Runtime (no torch), one thread, batched with
concurrent requests by the engine like any transformer encoder; its vectors are its
own (its id names the graph's digest), never shared with the stock MiniLM users.

A missing or unreadable graph is a ConfigError naming the file when the model loads.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from polyroute.errors import ConfigError

FINETUNED = "finetuned"
GRAPH = "encoder.onnx"
#: the tokens a fine-tuned encoder reads (it is trained on prompts cut there)
MAX_TOKENS = 128
Array = npt.NDArray[np.float32]


class FineTunedEncoder:
    """Prompts -> the fine-tuned graph's pooled ``[n x 384]`` vectors (not unit length)."""

    def __init__(self, runtime: Any, digest: str) -> None:
        self.runtime = runtime
        self.id = f"{FINETUNED}:{digest}"

    def fit(self, texts: Sequence[str]) -> FineTunedEncoder:
        return self  # trained by train-signal, not here

    def encode(self, texts: Sequence[str]) -> Array:
        out: Array = self.runtime.encode(list(texts))
        return out

    def state(self) -> dict[str, npt.NDArray[Any]]:
        return {}


def finetuned_encoder(root: Path) -> FineTunedEncoder:
    """The encoder of the model directory ``root`` (one per graph file and process)."""
    graph = root / GRAPH
    try:
        stat = graph.stat()
    except OSError as exc:
        raise ConfigError(f"{graph}: cannot read the fine-tuned encoder ({exc.strerror})") from None
    return _load(graph.resolve(), stat.st_mtime_ns, stat.st_size)


@lru_cache(maxsize=4)
def _load(graph: Path, mtime_ns: int, size: int) -> FineTunedEncoder:
    """Keyed by the file's identity as well as its path: a replaced file loads again."""
    from polyroute.embed_onnx import MiniLMRuntime

    try:
        digest = hashlib.sha256(graph.read_bytes()).hexdigest()[:16]
        runtime = MiniLMRuntime.load(graph, threads=1, max_tokens=MAX_TOKENS)
        width = runtime.session.get_outputs()[0].shape[-1]
    except ImportError as exc:
        raise ConfigError(
            f"{graph}: a fine-tuned encoder needs the 'learn' extra ({exc.name} is missing): "
            "pip install 'polyroute[learn]'"
        ) from None
    except Exception as exc:  # onnxruntime raises its own types for a corrupt graph
        first = str(exc).strip().splitlines()[:1] or [type(exc).__name__]
        reason = first[0][:200]
        raise ConfigError(f"{graph}: not a readable ONNX encoder graph ({reason})") from None
    if width != 384:
        raise ConfigError(f"{graph}: the graph gives {width}-dim vectors, expected 384")
    return FineTunedEncoder(runtime, digest)
