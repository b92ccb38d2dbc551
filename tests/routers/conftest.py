"""Fixtures for the learned-router tests: small slices of dcrouter and a synthetic pool."""

from __future__ import annotations

import numpy as np
import pytest
from routers.learned_fixtures import synthetic

from polyroute.dataset import RoutingDataset
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


@pytest.fixture(scope="session")
def toy() -> RoutingDataset:
    return synthetic()
