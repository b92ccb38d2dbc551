"""Routing datasets: per-prompt, per-model quality and cost (layout: ../shared/data/README.md).

Plain data shared by the learned routers and the workbench (routers never import ``eval``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

Matrix = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class ModelPrice:
    input_price_per_mtok: float
    output_price_per_mtok: float
    params_b: float | None = None


@dataclass(frozen=True)
class RoutingDataset:
    """Rows are prompts, columns are models (``models`` fixes the column order).

    ``scores`` and ``costs`` are ``[len(prompts) x len(models)]``.  ``tasks`` is
    metadata for reports only; routers never read it at prediction time.
    """

    ids: tuple[str, ...]
    prompts: tuple[str, ...]
    models: tuple[str, ...]
    scores: Matrix
    costs: Matrix
    tasks: tuple[str, ...] | None = None
    prices: dict[str, ModelPrice] | None = None

    def __len__(self) -> int:
        return len(self.prompts)

    def subset(self, rows: Sequence[int] | npt.NDArray[np.intp]) -> RoutingDataset:
        idx = np.asarray(rows, dtype=np.intp)
        return RoutingDataset(
            ids=tuple(self.ids[i] for i in idx),
            prompts=tuple(self.prompts[i] for i in idx),
            models=self.models,
            scores=self.scores[idx],
            costs=self.costs[idx],
            tasks=None if self.tasks is None else tuple(self.tasks[i] for i in idx),
            prices=self.prices,
        )
