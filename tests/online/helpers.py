"""Synthetic streams for the online-router tests."""

from __future__ import annotations

import numpy as np

from polyroute.dataset import RoutingDataset
from polyroute.online import Stream

MODELS = ("left", "right", "middle")


def synthetic_stream(n: int = 2000, seed: int = 0) -> Stream:
    """``left`` solves prompts with ``x0 > 0``, ``right`` those with ``x0 < 0`` (90 %),
    ``middle`` half of all; all cost the same.  Features ``[x0, x1, x2, 1]``."""
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, 3))
    x = np.concatenate([z, np.ones((n, 1))], axis=1)
    side = z[:, 0] > 0
    noise = rng.random((n, 3))
    left = noise[:, 0] < np.where(side, 0.9, 0.1)
    right = noise[:, 1] < np.where(side, 0.1, 0.9)
    scores = np.stack([left, right, noise[:, 2] < 0.5], axis=1).astype(np.float64)
    data = RoutingDataset(
        ids=tuple(f"r{i}" for i in range(n)),
        prompts=tuple(f"prompt {i}" for i in range(n)),
        models=MODELS,
        scores=scores,
        costs=np.full((n, 3), 1e-4),
    )
    return Stream(data, x)
