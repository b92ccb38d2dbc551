"""Load the dcrouter dataset for the benchmarks."""

from __future__ import annotations

from pathlib import Path

from polyroute.eval.dataset import RoutingDataset
from polyroute.eval.io import load_dataset

DCROUTER = Path("/work/shared/data/dcrouter")


def load(
    path: Path = DCROUTER / "train.jsonl", models: Path = DCROUTER / "models.json"
) -> RoutingDataset:
    return load_dataset(path, models)
