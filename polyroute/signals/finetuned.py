"""A fine-tuned MiniLM as a signal's encoder (``encoder: finetuned`` in a model's manifest).

The model directory holds, beside ``manifest.json`` and ``arrays.npz`` (the linear head,
as for every signal model), ``encoder.onnx``: all-MiniLM-L6-v2 with every weight
fine-tuned for the signal, mean-pooled, int8-quantised (``polyroute train-signal
jailbreak --encoder finetuned``, see ``polyroute.signals.finetune_train``).  It reads
MiniLM's tokenizer (cut at the manifest's ``max_tokens``, default 128) and runs on ONNX
Runtime (no torch), one thread, one prompt a run (see ``FineTunedEncoder.encode``: a
prompt's score never depends on the requests beside it; the engine runs concurrent
requests' prompts side by side, one per core); its vectors are its own (its
id names the graph's digest and the tokens read), never shared with stock MiniLM users.

A missing or unreadable graph is a ConfigError naming the file when the model loads.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from polyroute.errors import ConfigError

FINETUNED = "finetuned"
GRAPH = "encoder.onnx"
#: the tokens a fine-tuned encoder reads unless its manifest says (it is trained on
#: prompts cut there)
MAX_TOKENS = 128
Array = npt.NDArray[np.float32]


class FineTunedEncoder:
    """Prompts -> the fine-tuned graph's pooled ``[n x 384]`` vectors (not unit length)."""

    #: the engine runs its prompts one to a call, side by side (``batching.EncoderBatchers``)
    one_prompt_per_run = True

    def __init__(self, runtime: Any, digest: str) -> None:
        self.runtime = runtime
        self.id = f"{FINETUNED}:{digest}"

    def fit(self, texts: Sequence[str]) -> FineTunedEncoder:
        return self  # trained by train-signal, not here

    def encode(self, texts: Sequence[str]) -> Array:
        """One graph run per prompt: the int8 graph quantises its activations with one
        scale per run, so a prompt batched with others (padding included) would get a
        slightly different vector, and a guard's verdict would depend on the traffic
        beside it; batching buys nothing here anyway (8.2 ms a prompt alone, 8.5 in
        batches of 8, on 128-token prompts)."""
        out: Array = np.zeros((len(texts), 384), dtype=np.float32)
        for i, text in enumerate(texts):
            out[i] = self.runtime.encode([text])[0]
        return out

    def state(self) -> dict[str, npt.NDArray[Any]]:
        return {}


def finetuned_encoder(root: Path, max_tokens: int | None = None) -> FineTunedEncoder:
    """The encoder of the model directory ``root`` (one per graph file and process),
    reading the tokens its manifest's ``max_tokens`` says (default 128) unless given."""
    graph = root / GRAPH
    try:
        stat = graph.stat()
    except OSError as exc:
        raise ConfigError(f"{graph}: cannot read the fine-tuned encoder ({exc.strerror})") from None
    if max_tokens is None:
        max_tokens = _manifest_tokens(root)
    return _load(graph.resolve(), stat.st_mtime_ns, stat.st_size, max_tokens)


def _manifest_tokens(root: Path) -> int:
    """The ``max_tokens`` of the model's manifest (128 when it names none)."""
    file = root / "manifest.json"
    try:
        found = json.loads(file.read_text()).get("max_tokens", MAX_TOKENS)
    except (OSError, ValueError, AttributeError):
        return MAX_TOKENS  # load_model names a missing or broken manifest
    if isinstance(found, bool) or not isinstance(found, int) or not 8 <= found <= 256:
        raise ConfigError(f"{file}: 'max_tokens' must be a whole number from 8 to 256")
    return found


@lru_cache(maxsize=4)
def _load(graph: Path, mtime_ns: int, size: int, max_tokens: int) -> FineTunedEncoder:
    """Keyed by the file's identity as well as its path: a replaced file loads again."""
    from polyroute.embed_onnx import MiniLMRuntime

    try:
        digest = hashlib.sha256(graph.read_bytes()).hexdigest()[:16]
        runtime = MiniLMRuntime.load(graph, threads=1, max_tokens=max_tokens)
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
    return FineTunedEncoder(runtime, f"{digest}:{max_tokens}")
