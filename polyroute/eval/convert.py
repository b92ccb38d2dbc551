"""Convert RouterBench-style wide tables into a :class:`RoutingDataset`.

A wide table has one row per prompt and the columns ``prompt``, optionally
``sample_id`` (-> ``id``) and ``eval_name`` (-> ``task``), and for every model
``M`` a score column ``M`` (a number in [0, 1]) and a cost column
``M|total_cost`` (USD).  A model is any column ``M`` for which ``M|total_cost``
exists; other columns (``M|model_response``, ``oracle_model_to_route_to``, ...)
are ignored.  CSV is read with the ``csv`` module; parquet only when pyarrow is
importable.  Write the result with :func:`polyroute.eval.io.write_dataset`.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from polyroute.dataset import RoutingDataset
from polyroute.errors import DatasetError

COST_SUFFIX = "|total_cost"


def _from_csv(path: Path) -> RoutingDataset:
    csv.field_size_limit(1 << 30)
    with path.open(encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh)
        header = list(reader.fieldnames or [])
        models = _models_of(header, path)
        rows = ((reader.line_num, row) for row in reader)
        return _build(path, models, rows, has_task="eval_name" in header)


def _from_parquet(path: Path) -> RoutingDataset:
    try:
        import pyarrow.parquet as pq  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        raise DatasetError(
            f"{path}: reading parquet needs pyarrow, which is not installed; "
            "convert the table to CSV first"
        ) from None
    table = pq.read_table(path)
    header = [str(c) for c in table.column_names]
    models = _models_of(header, path)
    rows = ((i + 1, dict(r)) for i, r in enumerate(table.to_pylist()))
    return _build(path, models, rows, has_task="eval_name" in header)


def _number(value: Any, where: str, column: str, unit: bool) -> float:
    try:
        x = float(value)
    except (TypeError, ValueError):
        x = math.nan
    if not math.isfinite(x) or x < 0 or (unit and x > 1):
        expected = "a number in [0, 1]" if unit else "a number >= 0"
        raise DatasetError(f"{where}: column {column!r} = {value!r}; expected {expected}")
    return x


def _models_of(header: list[str], path: Path) -> tuple[str, ...]:
    models = tuple(c[: -len(COST_SUFFIX)] for c in header if c.endswith(COST_SUFFIX))
    missing = [m for m in models if m not in header]
    if missing:
        raise DatasetError(f"{path}: no score column for model(s) {', '.join(missing)}")
    if not models:
        raise DatasetError(f"{path}: no '<model>{COST_SUFFIX}' columns; expected a wide table")
    if "prompt" not in header:
        raise DatasetError(f"{path}: no 'prompt' column")
    return models


def convert_routerbench(path: str | Path) -> RoutingDataset:
    """Read a RouterBench-style wide table (``.csv`` or ``.parquet``)."""
    p = Path(path)
    if not p.is_file():
        raise DatasetError(f"{p}: no such file; expected a CSV or parquet wide table")
    try:
        return _from_parquet(p) if p.suffix == ".parquet" else _from_csv(p)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DatasetError(f"{p}: cannot read the table ({exc!s})") from None


def _build(
    p: Path,
    models: tuple[str, ...],
    rows: Iterator[tuple[int, Mapping[str, Any]]],
    has_task: bool,
) -> RoutingDataset:
    ids: list[str] = []
    prompts: list[str] = []
    tasks: list[str] = []
    scores: list[list[float]] = []
    costs: list[list[float]] = []
    seen: set[str] = set()
    for line, row in rows:
        where = f"{p}:{line}"
        prompt = row.get("prompt")
        if not isinstance(prompt, str) or not prompt:
            raise DatasetError(f"{where}: empty or missing 'prompt'; expected text")
        sample = row.get("sample_id")
        row_id = str(sample) if sample not in (None, "") else f"row-{len(ids)}"
        if row_id in seen:
            row_id = f"{row_id}#{len(ids)}"
        seen.add(row_id)
        ids.append(row_id)
        prompts.append(prompt)
        tasks.append(str(row.get("eval_name") or ""))
        scores.append([_number(row.get(m), where, m, unit=True) for m in models])
        costs.append(
            [_number(row.get(m + COST_SUFFIX), where, m + COST_SUFFIX, unit=False) for m in models]
        )
    if not ids:
        raise DatasetError(f"{p}: no rows")
    return RoutingDataset(
        ids=tuple(ids),
        prompts=tuple(prompts),
        models=models,
        scores=np.asarray(scores, dtype=np.float64),
        costs=np.asarray(costs, dtype=np.float64),
        tasks=tuple(tasks) if has_task else None,
    )
