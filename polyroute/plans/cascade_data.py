"""Recorded answers with their confidences: what a cascade is tuned and judged on.

A cascade dataset is a routing dataset (``scores``, ``costs`` per model; see
``polyroute.dataset``) whose rows also carry each model's confidence data:
``logprobs: {model: [token logprobs]}`` or ``verify_logprob: {model: log P("Y")}``.
:func:`load_cascade_data` turns them into one statistic per (row, model) with the
functions of :mod:`polyroute.plans.confidence`, the ones the gateway applies to a live
answer; a model without the data has ``NaN`` (its stage escalates).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from polyroute.dataset import Matrix
from polyroute.errors import DatasetError
from polyroute.plans import confidence

#: the row field each statistic is read from
FIELDS: dict[str, str] = {
    "logprob_mean": "logprobs",
    "logprob_min": "logprobs",
    "verify": "verify_logprob",
}


@dataclass(frozen=True)
class CascadeData:
    """Rows x models: ``scores`` (0..1), ``costs`` (USD) and ``confidence`` (``NaN`` = none)."""

    ids: tuple[str, ...]
    models: tuple[str, ...]
    scores: Matrix
    costs: Matrix
    confidence: Matrix
    statistic: str
    tasks: tuple[str, ...] | None = None

    def __len__(self) -> int:
        return len(self.ids)

    def subset(self, rows: Sequence[int] | npt.NDArray[np.intp]) -> CascadeData:
        idx = np.asarray(rows, dtype=np.intp)
        return CascadeData(
            ids=tuple(self.ids[i] for i in idx),
            models=self.models,
            scores=self.scores[idx],
            costs=self.costs[idx],
            confidence=self.confidence[idx],
            statistic=self.statistic,
            tasks=None if self.tasks is None else tuple(self.tasks[i] for i in idx),
        )


def statistic_of(statistic: str, value: Any) -> float | None:
    """One model's statistic from its recorded field value (a token list, or log P("Y"))."""
    if statistic == "verify":
        return confidence.verify(value)
    if not isinstance(value, list):
        return None
    return confidence.TOKEN_FUNCTIONS[statistic](value)


def _confidences(
    rows: Sequence[Mapping[str, Any]], models: Sequence[str], statistic: str, where: str
) -> Matrix:
    field = FIELDS[statistic]
    out = np.full((len(rows), len(models)), np.nan)
    seen = False
    for i, row in enumerate(rows):
        recorded = row.get(field)
        if not isinstance(recorded, Mapping):
            continue
        seen = True
        for j, model in enumerate(models):
            value = statistic_of(statistic, recorded.get(model))
            if value is not None and math.isfinite(value):
                out[i, j] = value
    if not seen:
        raise DatasetError(
            f"{where}: no row has {field!r}; the {statistic!r} statistic needs "
            f"{field}: {{model: ...}} per row"
        )
    return out


def available_statistics(path: str | Path) -> list[str]:
    """The statistics the dataset's first row has the data for (``logprob_mean``, ``verify``)."""
    from polyroute.eval.io import resolve_data_path
    from polyroute.jsonio import json_lines

    for _, row in json_lines(resolve_data_path(path)):
        out = []
        if isinstance(row.get("logprobs"), Mapping):
            out.append("logprob_mean")
        if isinstance(row.get("verify_logprob"), Mapping):
            out.append("verify")
        return out
    return []


def load_cascade_data(
    path: str | Path, statistic: str, models_path: str | Path | None = None
) -> CascadeData:
    """A cascade dataset (a JSONL file or a directory holding ``train.jsonl``)."""
    from polyroute.eval.io import load_dataset, resolve_data_path
    from polyroute.jsonio import json_lines

    if statistic not in FIELDS:
        raise DatasetError(f"unknown statistic {statistic!r}; expected one of {sorted(FIELDS)}")
    file = resolve_data_path(path)
    base = load_dataset(file, models_path)
    rows = [row for _, row in json_lines(file)]
    return CascadeData(
        ids=base.ids,
        models=base.models,
        scores=base.scores,
        costs=base.costs,
        confidence=_confidences(rows, base.models, statistic, str(file)),
        statistic=statistic,
        tasks=base.tasks,
    )


__all__ = ["FIELDS", "CascadeData", "available_statistics", "load_cascade_data", "statistic_of"]
