"""Small numerical helpers shared by the learned routers (numpy + scipy L-BFGS)."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import Any

import numpy as np
import numpy.typing as npt

from polyroute.dataset import Matrix

F64 = npt.NDArray[np.float64]


def sigmoid(z: npt.NDArray[Any]) -> F64:
    return np.asarray(0.5 * (1.0 + np.tanh(0.5 * np.asarray(z, dtype=np.float64))))


def logit(p: npt.NDArray[Any], eps: float = 1e-4) -> F64:
    q = np.clip(np.asarray(p, dtype=np.float64), eps, 1.0 - eps)
    return np.asarray(np.log(q / (1.0 - q)))


def fit_logistic(x: npt.NDArray[Any], y: Matrix, l2: float, max_iter: int = 300) -> tuple[F64, F64]:
    """Multi-output logistic regression with soft labels in [0, 1].

    Minimises ``mean BCE + l2/2 * |W|^2`` (the bias is not penalised) with L-BFGS.
    Returns ``(W [d x m], b [m])``.
    """
    from scipy.optimize import minimize

    xx = np.asarray(x, dtype=np.float64)
    n, d = xx.shape
    m = y.shape[1]
    prior = logit(y.mean(axis=0), 1e-3)

    def loss(theta: F64) -> tuple[float, F64]:
        w = theta[: d * m].reshape(d, m)
        b = theta[d * m :]
        z = xx @ w + b
        # BCE with logits: log(1 + e^z) - y z
        val = float((np.logaddexp(0.0, z) - y * z).sum() / n + 0.5 * l2 * (w * w).sum())
        g = (sigmoid(z) - y) / n
        gw = xx.T @ g + l2 * w
        return val, np.concatenate([gw.ravel(), g.sum(axis=0)])

    theta0 = np.concatenate([np.zeros(d * m), prior])
    with single_thread():
        res = minimize(loss, theta0, jac=True, method="L-BFGS-B", options={"maxiter": max_iter})
    theta = np.asarray(res.x, dtype=np.float64)
    return theta[: d * m].reshape(d, m), theta[d * m :]


Split = tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]]


def kfold_indices(n: int, k: int, seed: int = 0) -> list[Split]:
    """``k`` shuffled (train, test) index splits of ``range(n)``."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(n)
    folds = np.array_split(order, k)
    out = []
    for i in range(k):
        test = np.sort(folds[i])
        train = np.sort(np.concatenate([folds[j] for j in range(k) if j != i]))
        out.append((train.astype(np.intp), test.astype(np.intp)))
    return out


def group_kfold_indices(groups: Sequence[str], k: int, seed: int = 0) -> list[Split]:
    """``k`` (train, test) splits of the rows that never put a group on both sides: the
    sorted distinct groups are cut by :func:`kfold_indices` (scikit-learn's
    ``GroupKFold(shuffle=True)``).  ``2 <= k <=`` the number of groups."""
    labels = np.asarray(groups, dtype=object)
    names = sorted(set(groups))
    out = []
    for _, held in kfold_indices(len(names), k, seed):
        mask = np.isin(labels, np.asarray([names[j] for j in held], dtype=object))
        out.append((np.flatnonzero(~mask).astype(np.intp), np.flatnonzero(mask).astype(np.intp)))
    return out


class Adam:
    """Adam on a list of numpy arrays, updated in place."""

    def __init__(self, params: list[F64], lr: float, b1: float = 0.9, b2: float = 0.999) -> None:
        self.params = params
        self.lr, self.b1, self.b2 = lr, b1, b2
        self.m = [np.zeros_like(p) for p in params]
        self.v = [np.zeros_like(p) for p in params]
        self.t = 0

    def step(self, grads: list[F64]) -> None:
        self.t += 1
        c1 = 1 - self.b1**self.t
        c2 = 1 - self.b2**self.t
        for i, g in enumerate(grads):
            self.m[i] = self.b1 * self.m[i] + (1 - self.b1) * g
            self.v[i] = self.b2 * self.v[i] + (1 - self.b2) * g * g
            self.params[i] -= self.lr * (self.m[i] / c1) / (np.sqrt(self.v[i] / c2) + 1e-8)


def minibatches(n: int, size: int, rng: np.random.Generator) -> list[npt.NDArray[np.intp]]:
    """A shuffled partition of ``range(n)`` into batches of at most ``size`` rows."""
    order = rng.permutation(n).astype(np.intp)
    return [order[s : s + size] for s in range(0, n, max(1, size))]


def single_thread() -> AbstractContextManager[Any]:
    """Limit BLAS/OpenMP to one thread: small matmuls only contend on a busy machine."""
    from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

    return threadpool_limits(1)  # type: ignore[no-any-return]


def epochs_for(n: int, batch_size: int, epochs: int, min_steps: int = 600) -> int:
    """``epochs``, raised so that small datasets still get ``min_steps`` optimiser steps."""
    per_epoch = max(1, -(-n // max(1, batch_size)))
    return max(epochs, -(-min_steps // per_epoch))


def train_two_layer(
    x: npt.NDArray[Any],
    y: Matrix,
    *,
    width: int,
    relu: bool,
    l2: float,
    lr: float,
    epochs: int,
    batch_size: int,
    seed: int,
) -> list[F64]:
    """``sigmoid(act(x W + c) U + b)`` fitted to soft labels with Adam (MF: identity, MLP: ReLU).

    Returns ``[W, c, U, b]``.  Layer 1 starts at He scale for ReLU, 1/sqrt(d) otherwise.
    """
    rng = np.random.default_rng(seed)
    xx = np.asarray(x, dtype=np.float64)
    n, d = xx.shape
    scale = np.sqrt(2.0 / d) if relu else 1 / np.sqrt(d)
    params = [
        rng.normal(0, scale, (d, width)),
        np.zeros(width),
        rng.normal(0, 1 / np.sqrt(width), (width, y.shape[1])),
        logit(y.mean(axis=0), 1e-3),
    ]
    opt = Adam(params, lr)
    for _ in range(epochs_for(n, batch_size, epochs)):
        for rows in minibatches(n, batch_size, rng):
            xb = xx[rows]
            w, c, u, b = params
            pre = xb @ w + c
            h = np.maximum(pre, 0.0) if relu else pre
            g = (sigmoid(h @ u + b) - y[rows]) / len(rows)
            gh = (g @ u.T) * (pre > 0) if relu else g @ u.T
            opt.step([xb.T @ gh + l2 * w, gh.sum(axis=0), h.T @ g + l2 * u, g.sum(axis=0)])
    return params


def two_layer_forward(x: npt.NDArray[Any], params: list[F64], relu: bool) -> F64:
    w, c, u, b = params
    h = np.asarray(x, dtype=np.float64) @ w + c
    return sigmoid((np.maximum(h, 0.0) if relu else h) @ u + b)
