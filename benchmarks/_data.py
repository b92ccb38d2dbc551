"""Load the dcrouter dataset for the benchmarks."""

from __future__ import annotations

from pathlib import Path

from polyroute.dataset import RoutingDataset
from polyroute.eval.io import load_dataset

# ../shared/data/dcrouter beside the repository (the canonical copy); else the packaged sample
_SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "dcrouter"
DCROUTER = (
    _SHARED
    if _SHARED.is_dir()
    else Path(__file__).resolve().parents[1] / "polyroute" / "data" / "dcrouter"
)


def load(
    path: Path = DCROUTER / "train.jsonl", models: Path = DCROUTER / "models.json"
) -> RoutingDataset:
    return load_dataset(path, models)
