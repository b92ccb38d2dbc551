"""Fixtures of the online-router tests: a slice of the shipped dcrouter sample, an artifact."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from polyroute.dataset import RoutingDataset
from polyroute.eval.io import load_dataset, write_dataset
from polyroute.routers.artifact import save_router
from polyroute.routers.learned.knn import KNNRouter


@pytest.fixture(scope="session")
def dcrouter_slices() -> tuple[RoutingDataset, RoutingDataset]:
    """(train, stream): about 190 and 120 rows of the shipped sample, disjoint."""
    data = load_dataset("dcrouter")
    return data.subset(np.arange(0, len(data), 29)), data.subset(np.arange(5, len(data), 47))


@pytest.fixture(scope="session")
def artifact(tmp_path_factory: pytest.TempPathFactory, dcrouter_slices: tuple) -> Path:
    train, _ = dcrouter_slices
    router = KNNRouter(encoder="tfidf", k=10).fit(train)
    return save_router(router, tmp_path_factory.mktemp("online") / "knn")


@pytest.fixture(scope="session")
def stream_dir(tmp_path_factory: pytest.TempPathFactory, dcrouter_slices: tuple) -> Path:
    return write_dataset(dcrouter_slices[1], tmp_path_factory.mktemp("online") / "stream")
