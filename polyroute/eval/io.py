"""Read and write routing datasets in the canonical JSONL layout.

``<dir>/train.jsonl`` holds one object per line: ``id`` (string), ``prompt``
(string), optional ``task`` (string), ``scores`` (model -> number in [0, 1]) and
``costs`` (model -> number >= 0).  ``<dir>/models.json`` maps model ->
``{input_price_per_mtok, output_price_per_mtok, params_b}``.  Every malformed
row raises :class:`~polyroute.errors.DatasetError` naming the file, the line
and what was expected.  ``.csv``/``.parquet`` files are RouterBench-style wide
tables (see :mod:`polyroute.eval.convert`).  A name without a path separator that is not an existing
file (``"dcrouter"``) resolves to the sample shipped in ``polyroute/data/``.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from polyroute.dataset import ModelPrice, RoutingDataset
from polyroute.errors import DatasetError
from polyroute.eval.convert import convert_routerbench
from polyroute.jsonio import json_lines

__all__ = [
    "PromptRow",
    "builtin_datasets",
    "convert_routerbench",
    "load_dataset",
    "load_groups",
    "load_prices",
    "load_prompts",
    "resolve_data_path",
    "write_dataset",
]

BUILTIN_DIR = Path(__file__).resolve().parent.parent / "data"
DATA_FILE = "train.jsonl"
MODELS_FILE = "models.json"
WIDE_SUFFIXES = (".csv", ".parquet")


@dataclass(frozen=True, slots=True)
class PromptRow:
    """One prompt to predict for: only ``id`` and ``prompt`` are read."""

    id: str
    prompt: str


def builtin_datasets() -> list[str]:
    """Names of the sample datasets shipped with the package."""
    if not BUILTIN_DIR.is_dir():
        return []
    return sorted(p.name for p in BUILTIN_DIR.iterdir() if (p / DATA_FILE).is_file())


def resolve_data_path(path: str | Path) -> Path:
    """Turn ``path`` into a JSONL file: a file, a dataset directory or a built-in name."""
    p = Path(path)
    if p.is_dir():
        p = p / DATA_FILE
    if p.is_file():
        return p
    name = str(path)
    if "/" not in name and "\\" not in name and (BUILTIN_DIR / name / DATA_FILE).is_file():
        return BUILTIN_DIR / name / DATA_FILE
    builtins = ", ".join(builtin_datasets()) or "none"
    raise DatasetError(
        f"{path}: no such dataset file; expected a JSONL file, a directory holding "
        f"{DATA_FILE}, or a built-in dataset name ({builtins})"
    )


def _text(obj: Mapping[str, Any], key: str, where: str, required: bool = True) -> str | None:
    value = obj.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, str):
        got = "missing" if value is None else f"a {type(value).__name__}"
        raise DatasetError(f"{where}: field {key!r} is {got}; expected a string")
    return value


def _row_id(obj: Mapping[str, Any], where: str, default: str) -> str:
    value = obj.get("id", default)
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise DatasetError(f"{where}: field 'id' must be a string, got {type(value).__name__}")
    return str(value)


def _numbers(
    obj: Mapping[str, Any], key: str, where: str, models: tuple[str, ...] | None, unit: bool
) -> dict[str, float]:
    table = obj.get(key)
    if not isinstance(table, dict) or not table:
        raise DatasetError(f"{where}: field {key!r} must be a non-empty object model -> number")
    out: dict[str, float] = {}
    for model, value in table.items():
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        if ok and not math.isfinite(value):
            ok = False
        if ok and (value < 0 or (unit and value > 1)):
            ok = False
        if not ok:
            expected = "a number in [0, 1]" if unit else "a number >= 0"
            raise DatasetError(f"{where}: {key}[{model!r}] = {value!r}; expected {expected}")
        out[model] = float(value)
    if models is not None:
        missing = [m for m in models if m not in out]
        if missing:
            raise DatasetError(
                f"{where}: {key} lacks model(s) {', '.join(missing)}; every row must "
                f"list the same models as the first row"
            )
        extra = [m for m in out if m not in models]
        if extra:
            raise DatasetError(f"{where}: {key} has unknown model(s) {', '.join(extra)}")
    return out


def load_prices(path: str | Path) -> dict[str, ModelPrice]:
    """Read ``models.json``: model -> prices in USD per million tokens."""
    p = Path(path)
    try:
        raw = json.loads(p.read_text(encoding="utf-8"))
    except OSError as exc:
        raise DatasetError(f"{p}: cannot read ({exc.strerror})") from None
    except json.JSONDecodeError as exc:
        raise DatasetError(f"{p}:{exc.lineno}: invalid JSON ({exc.msg})") from None
    if not isinstance(raw, dict):
        raise DatasetError(f"{p}: expected an object model -> prices")
    prices: dict[str, ModelPrice] = {}
    for model, entry in raw.items():
        if not isinstance(entry, dict):
            raise DatasetError(f"{p}: {model!r} must be an object of prices")
        try:
            params = entry.get("params_b")
            prices[model] = ModelPrice(
                input_price_per_mtok=float(entry["input_price_per_mtok"]),
                output_price_per_mtok=float(entry["output_price_per_mtok"]),
                params_b=None if params is None else float(params),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise DatasetError(
                f"{p}: {model!r} needs numeric input_price_per_mtok and "
                f"output_price_per_mtok ({exc!s})"
            ) from None
    return prices


def load_dataset(path: str | Path, models_path: str | Path | None = None) -> RoutingDataset:
    """Load a canonical routing dataset (``models_path`` defaults to models.json beside it).

    A ``.csv`` or ``.parquet`` file is read as a RouterBench-style wide table
    (:func:`convert_routerbench`).
    """
    file = resolve_data_path(path)
    if file.suffix in WIDE_SUFFIXES:
        wide = convert_routerbench(file)
        prices = _prices_for(file, models_path, wide.models)
        return dataclasses.replace(wide, prices=prices)
    ids: list[str] = []
    prompts: list[str] = []
    tasks: list[str | None] = []
    models: tuple[str, ...] | None = None
    scores: list[list[float]] = []
    costs: list[list[float]] = []
    seen: dict[str, int] = {}
    for lineno, obj in json_lines(file):
        where = f"{file}:{lineno}"
        row_id = _row_id(obj, where, default=f"line-{lineno}")
        if row_id in seen:
            raise DatasetError(f"{where}: duplicate id {row_id!r} (first on line {seen[row_id]})")
        seen[row_id] = lineno
        prompt = _text(obj, "prompt", where)
        task = _text(obj, "task", where, required=False)
        s = _numbers(obj, "scores", where, models, unit=True)
        if models is None:
            models = tuple(s)
        c = _numbers(obj, "costs", where, models, unit=False)
        ids.append(row_id)
        prompts.append(prompt or "")
        tasks.append(task)
        scores.append([s[m] for m in models])
        costs.append([c[m] for m in models])
    if models is None:
        raise DatasetError(f"{file}: no rows; expected one JSON object per line")
    prices = _prices_for(file, models_path, models)
    have_tasks = all(t is not None for t in tasks)
    return RoutingDataset(
        ids=tuple(ids),
        prompts=tuple(prompts),
        models=models,
        scores=np.asarray(scores, dtype=np.float64),
        costs=np.asarray(costs, dtype=np.float64),
        tasks=tuple(t or "" for t in tasks) if have_tasks else None,
        prices=prices,
    )


def _prices_for(
    file: Path, models_path: str | Path | None, models: tuple[str, ...]
) -> dict[str, ModelPrice] | None:
    if models_path is None:
        beside = file.parent / MODELS_FILE
        if not beside.is_file():
            return None
        models_path = beside
    prices = load_prices(models_path)
    missing = [m for m in models if m not in prices]
    if missing:
        raise DatasetError(f"{models_path}: no prices for model(s) {', '.join(missing)}")
    return prices


def load_groups(path: str | Path, field: str) -> tuple[str, ...]:
    """The value of ``field`` on every row of a dataset, as text (for ``--group-by``).

    Strings are kept, numbers and booleans written as JSON; a row without the
    field (or with null, a list or an object) raises DatasetError naming the line.
    A wide table (``.csv``) offers ``task`` only (its ``eval_name`` column).
    """
    file = resolve_data_path(path)
    if file.suffix in WIDE_SUFFIXES:
        tasks = convert_routerbench(file).tasks if field == "task" else None
        if tasks is None:
            raise DatasetError(
                f"{file}: --group-by {field}: a wide table offers only 'task' "
                "(its eval_name column)"
            )
        return tasks
    values: list[str] = []
    for lineno, obj in json_lines(file):
        value = obj.get(field)
        if isinstance(value, str):
            values.append(value)
        elif isinstance(value, int | float | bool):
            values.append(json.dumps(value))
        else:
            got = "missing" if field not in obj else "null" if value is None else "an object"
            got = "a list" if isinstance(value, list) else got
            raise DatasetError(
                f"{file}:{lineno}: field {field!r} is {got}; --group-by {field} needs "
                "a string or number on every row"
            )
    return tuple(values)


def load_prompts(path: str | Path) -> list[PromptRow]:
    """Read prompts to predict for; rows need ``prompt`` and may carry ``id`` (else line-N)."""
    file = resolve_data_path(path)
    rows: list[PromptRow] = []
    for lineno, obj in json_lines(file):
        where = f"{file}:{lineno}"
        prompt = _text(obj, "prompt", where)
        rows.append(PromptRow(id=_row_id(obj, where, f"line-{lineno}"), prompt=prompt or ""))
    return rows


def write_dataset(dataset: RoutingDataset, out_dir: str | Path) -> Path:
    """Write ``train.jsonl`` (and ``models.json`` when prices are known) into ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    with (out / DATA_FILE).open("w", encoding="utf-8") as fh:
        for i, row_id in enumerate(dataset.ids):
            row: dict[str, Any] = {"id": row_id, "prompt": dataset.prompts[i]}
            if dataset.tasks is not None:
                row["task"] = dataset.tasks[i]
            row["scores"] = dict(zip(dataset.models, dataset.scores[i].tolist(), strict=True))
            row["costs"] = dict(zip(dataset.models, dataset.costs[i].tolist(), strict=True))
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    if dataset.prices is not None:
        table = {
            m: {
                "input_price_per_mtok": p.input_price_per_mtok,
                "output_price_per_mtok": p.output_price_per_mtok,
                "params_b": p.params_b,
            }
            for m, p in dataset.prices.items()
        }
        (out / MODELS_FILE).write_text(json.dumps(table, indent=1) + "\n", encoding="utf-8")
    return out
