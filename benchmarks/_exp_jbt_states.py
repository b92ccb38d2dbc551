"""Helper of ``exp_jailbreak_tokens.py``: frozen MiniLM per-token states, cached.

Exports all-MiniLM-L6-v2 (the model ``polyroute.embed_onnx`` runs) once more, this time
returning ``last_hidden_state`` (not mean-pooled) to ``/tmp/jbt/minilm-tokens.onnx``, and
runs it with ONNX Runtime on the bundled ``tokenizer.json`` truncated to ``MAX_TOKENS``.
A set's states are cached as ``/tmp/jbt/states_NAME.npz``: ``x`` float16
``[total tokens x 384]`` (CLS and SEP included) and ``offsets`` int64 ``[n + 1]``.
"""

from __future__ import annotations

import os
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

OUT = Path("/tmp/jbt")
MAX_TOKENS = 128
CHUNK = 8
_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


def onnx_file() -> Path:
    path = OUT / "minilm-tokens.onnx"
    if path.exists():
        return path
    import torch

    from polyroute.embed import _minilm_model

    model = _minilm_model()
    bert = model[0].auto_model.eval()

    class Tokens(torch.nn.Module):
        def __init__(self, b: Any) -> None:
            super().__init__()
            self.b = b

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
            out = self.b(input_ids=input_ids, attention_mask=attention_mask,
                         token_type_ids=token_type_ids)  # fmt: skip
            return out.last_hidden_state

    sample = model.tokenizer(["a sample prompt"], return_tensors="pt")
    dynamic = {name: {0: "batch", 1: "tokens"} for name in _INPUTS}
    OUT.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    with warnings.catch_warnings(), torch.inference_mode():
        warnings.simplefilter("ignore")
        torch.onnx.export(Tokens(bert), tuple(sample[n] for n in _INPUTS), str(tmp),
                          input_names=list(_INPUTS), output_names=["tokens"],
                          dynamic_axes=dynamic, opset_version=17, dynamo=False)  # fmt: skip
    tmp.replace(path)
    return path


class TokenRuntime:
    """Prompts -> per-token last-layer states (float32 ``[tokens x 384]`` each)."""

    def __init__(self, threads: int = 1) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        from polyroute.embed_onnx import PAD, model_dir

        tok = Tokenizer.from_file(str(model_dir() / "tokenizer.json"))
        tok.enable_truncation(max_length=MAX_TOKENS)
        pad = tok.token_to_id(PAD)
        tok.enable_padding(pad_id=0 if pad is None else pad, pad_token=PAD)
        self.tok = tok
        opt = ort.SessionOptions()
        opt.intra_op_num_threads = threads
        opt.inter_op_num_threads = 1
        opt.log_severity_level = 3
        self.session = ort.InferenceSession(str(onnx_file()), opt,
                                            providers=["CPUExecutionProvider"])  # fmt: skip

    def states(self, texts: list[str]) -> list[Any]:
        enc = self.tok.encode_batch(texts)
        lengths = np.array([sum(e.attention_mask) for e in enc])
        ids = np.array([e.ids for e in enc], dtype=np.int64)
        types = np.array([e.type_ids for e in enc], dtype=np.int64)
        mask = np.array([e.attention_mask for e in enc], dtype=np.int64)
        out: list[Any] = [None] * len(texts)
        order = np.argsort(lengths, kind="stable")
        for s in range(0, len(texts), CHUNK):
            rows = order[s : s + CHUNK]
            width = int(lengths[rows].max())
            feed = {"input_ids": ids[rows, :width], "attention_mask": mask[rows, :width],
                    "token_type_ids": types[rows, :width]}  # fmt: skip
            h = self.session.run(None, feed)[0]
            for j, r in enumerate(rows):
                out[r] = h[j, : lengths[r]]
        return out


def cached_states(name: str, texts: list[str], rt: TokenRuntime | None = None) -> tuple[Any, Any]:
    """``(x float16 [tokens x 384], offsets [n + 1])`` of ``texts``, cached under ``name``."""
    path = OUT / f"states_{name}.npz"
    if path.exists():
        z = np.load(path)
        assert len(z["offsets"]) == len(texts) + 1, name
        return z["x"], z["offsets"]
    rt = rt or TokenRuntime()
    t0 = time.perf_counter()
    parts = []
    for s in range(0, len(texts), 512):
        parts += rt.states(texts[s : s + 512])
    offsets = np.concatenate([[0], np.cumsum([len(p) for p in parts])]).astype(np.int64)
    x = np.concatenate(parts).astype(np.float16)
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, x=x, offsets=offsets)
    tmp.replace(path)
    print(f"states {name}: {len(texts)} texts, {len(x)} tokens, "
          f"{time.perf_counter() - t0:.0f} s", flush=True)  # fmt: skip
    return x, offsets


def main() -> None:
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from exp_jailbreak_tokens import all_texts

    rt = TokenRuntime(threads=1)
    for name, texts in all_texts().items():
        cached_states(name, texts, rt)


if __name__ == "__main__":
    main()
