"""The trained head of ``exp_jailbreak_tokens.py``: attention, max and mean pooling over
frozen MiniLM token states and one logistic output (torch to train; a few arrays to serve)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from _exp_jbt_data import Set

EPOCHS = 12


def make_head(arch: str) -> Any:
    import torch
    from torch import nn

    proj, heads = (0, 1) if arch == "lin" else (128, 2)

    class Head(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.proj = nn.Linear(384, proj) if proj else None
            dim = proj or 384
            self.dim = dim
            self.q = nn.Parameter(torch.zeros(heads, dim))
            self.out = nn.Linear(dim * (heads + 2), 1)

        def forward(self, h: Any, mask: Any) -> Any:
            z = torch.nn.functional.gelu(self.proj(h)) if self.proj is not None else h
            s = torch.einsum("btd,hd->bht", z, self.q) / math.sqrt(self.dim)
            s = s.masked_fill(~mask[:, None, :], float("-inf"))
            att = torch.einsum("bht,btd->bhd", torch.softmax(s, -1), z).flatten(1)
            mx = z.masked_fill(~mask[..., None], float("-inf")).amax(1)
            m = mask[..., None].to(z.dtype)
            mean = (z * m).sum(1) / m.sum(1)
            return self.out(torch.cat([att, mx, mean], 1)).squeeze(1)

    return Head()


class Pool:
    """Rows drawn from several sets: padded standardised batches of their token states."""

    def __init__(self, parts: list[tuple[Set, Any, float]], mu: Any, sd: Any) -> None:
        self.items = []  # (set, row, label, weight)
        for s, idx, w in parts:
            self.items += [(s, int(i), bool(s.y[i]), w) for i in idx]
        self.mu, self.sd = mu, sd
        self.lengths = np.asarray([s.off[i + 1] - s.off[i] for s, i, _, _ in self.items])

    def batch(self, sel: Any) -> tuple[Any, Any, Any, Any]:
        import torch

        width = int(self.lengths[sel].max())
        h = np.zeros((len(sel), width, 384), dtype=np.float32)
        mask = np.zeros((len(sel), width), dtype=bool)
        for j, k in enumerate(sel):
            s, i, _, _ = self.items[k]
            a, b = s.off[i], s.off[i + 1]
            h[j, : b - a] = (s.x[a:b].astype(np.float32) - self.mu) / self.sd
            mask[j, : b - a] = True
        y = np.asarray([self.items[k][2] for k in sel], dtype=np.float32)
        w = np.asarray([self.items[k][3] for k in sel], dtype=np.float32)
        return (torch.from_numpy(h), torch.from_numpy(mask), torch.from_numpy(y),
                torch.from_numpy(w))  # fmt: skip

    def batches(self, rng: Any | None, size: int = 64) -> list[Any]:
        n = len(self.items)
        order = rng.permutation(n) if rng is not None else np.arange(n)
        out = []
        for s in range(0, n, size * 16):  # length buckets of 16 batches
            chunk = order[s : s + size * 16]
            chunk = chunk[np.argsort(self.lengths[chunk], kind="stable")]
            out += [chunk[k : k + size] for k in range(0, len(chunk), size)]
        if rng is not None:
            out = [out[i] for i in rng.permutation(len(out))]
        return out


def token_stats(s: Set) -> tuple[Any, Any]:
    x = s.x.astype(np.float32)
    return x.mean(0), x.std(0) + 1e-3


def fit_head(arch: str, pool: Pool, epochs: int = EPOCHS) -> Any:
    import torch

    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    model = make_head(arch)
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=1e-4)
    model.train()
    for _ in range(epochs):
        for sel in pool.batches(rng):
            h, mask, y, w = pool.batch(sel)
            loss = torch.nn.functional.binary_cross_entropy_with_logits(
                model(h, mask), y, weight=w, reduction="sum") / w.sum()  # fmt: skip
            opt.zero_grad()
            loss.backward()
            opt.step()
    model.eval()
    return model


def head_scores(model: Any, s: Set, idx: Any, mu: Any, sd: Any) -> Any:
    import torch

    out = np.zeros(len(idx), dtype=np.float32)
    if len(idx) == 0:
        return out
    pool = Pool([(s, idx, 1.0)], mu, sd)
    with torch.inference_mode():
        for sel in pool.batches(None, 128):
            h, mask, _, _ = pool.batch(sel)
            out[sel] = torch.sigmoid(model(h, mask)).numpy()
    return out
