"""Fixtures for the learned-router tests: small slices of dcrouter and a synthetic pool."""

from __future__ import annotations

import numpy as np
import pytest

from polyroute.dataset import ModelPrice, RoutingDataset
from polyroute.eval.io import load_dataset


@pytest.fixture(scope="session")
def dcrouter() -> RoutingDataset:
    return load_dataset("dcrouter")  # the sample shipped in polyroute/data


@pytest.fixture(scope="session")
def small(dcrouter: RoutingDataset) -> RoutingDataset:
    """About 240 rows spread over every task."""
    return dcrouter.subset(np.arange(0, len(dcrouter), 23))


@pytest.fixture(scope="session")
def holdout(dcrouter: RoutingDataset) -> RoutingDataset:
    return dcrouter.subset(np.arange(7, len(dcrouter), 97))


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


@pytest.fixture(scope="session")
def toy() -> RoutingDataset:
    return synthetic()
