"""Shared helpers of the learned-router tests (fast hyperparameters)."""

from __future__ import annotations

from typing import Any

import numpy as np

from polyroute.dataset import ModelPrice, RoutingDataset

# fast hyperparameters per registered router (TF-IDF, few epochs); {} = defaults
FAST: dict[str, dict[str, Any]] = {
    "auto": {"encoder": "tfidf", "folds": 2, "time_budget_s": 4.0},
    "cluster": {"encoder": "tfidf", "n_clusters": 8},
    "knn": {"encoder": "tfidf"},
    "logistic": {"encoder": "tfidf"},
    "mf": {"encoder": "tfidf", "epochs": 5},
    "mlp": {"encoder": "tfidf", "epochs": 5, "hidden": 16},
    "stack": {"encoder": "tfidf", "bases": ["knn", "logistic", "cluster"], "folds": 2},
}


def synthetic(n: int = 120, seed: int = 0) -> RoutingDataset:
    """Two prompt kinds: maths prompts only 'big' solves, greetings both solve; 'small' is cheap."""
    rng = np.random.default_rng(seed)
    prompts, scores = [], []
    for i in range(n):
        if i % 2:
            a, b = rng.integers(10, 99, size=2)
            prompts.append(f"compute the integral of {a} x squared plus {b} dx please")
            scores.append([0.0, 1.0])
        else:
            prompts.append(f"hello there friend number {i}, how are you today")
            scores.append([1.0, 1.0])
    chars = np.array([len(p) for p in prompts], dtype=np.float64)
    costs = np.stack([1e-6 + 1e-8 * chars, 1e-5 + 1e-7 * chars], axis=1)
    return RoutingDataset(
        ids=tuple(f"s{i}" for i in range(n)),
        prompts=tuple(prompts),
        models=("small", "big"),
        scores=np.asarray(scores),
        costs=costs,
        prices={"small": ModelPrice(1.0, 1.0), "big": ModelPrice(10.0, 10.0)},
    )
