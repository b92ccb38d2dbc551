"""Reading routing datasets: the canonical layout, clear errors, built-ins and the converter."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from polyroute.errors import DatasetError
from polyroute.eval.convert import convert_routerbench
from polyroute.eval.io import (
    builtin_datasets,
    load_dataset,
    load_prompts,
    resolve_data_path,
    write_dataset,
)

PRICES = {
    "a": {"input_price_per_mtok": 0.1, "output_price_per_mtok": 0.2, "params_b": 7},
    "b": {"input_price_per_mtok": 1.0, "output_price_per_mtok": 2.0, "params_b": None},
}


def row(i: int, **over: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "id": f"r{i}",
        "prompt": f"prompt {i}",
        "task": "t1" if i % 2 else "t2",
        "scores": {"a": 0.0, "b": 1.0},
        "costs": {"a": 0.001, "b": 0.01},
    }
    base.update(over)
    return base


def write_rows(tmp_path: Path, rows: list[Any], prices: bool = True) -> Path:
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / "train.jsonl"
    lines = [r if isinstance(r, str) else json.dumps(r) for r in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    if prices:
        (tmp_path / "models.json").write_text(json.dumps(PRICES), encoding="utf-8")
    return path


def test_load_canonical_layout(tmp_path: Path) -> None:
    path = write_rows(tmp_path, [row(0), row(1, scores={"b": 0.5, "a": 0.25})])
    ds = load_dataset(path)
    assert ds.ids == ("r0", "r1")
    assert ds.models == ("a", "b")
    assert ds.scores.tolist() == [[0.0, 1.0], [0.25, 0.5]]  # columns follow the first row
    assert ds.costs.tolist() == [[0.001, 0.01], [0.001, 0.01]]
    assert ds.tasks == ("t2", "t1")
    assert ds.prices is not None
    assert ds.prices["a"].output_price_per_mtok == 0.2
    assert ds.prices["b"].params_b is None
    assert load_dataset(tmp_path).ids == ds.ids  # a directory works too


def test_prices_are_optional_and_tasks_too(tmp_path: Path) -> None:
    rows = [{k: v for k, v in row(i).items() if k != "task"} for i in range(2)]
    ds = load_dataset(write_rows(tmp_path, rows, prices=False))
    assert ds.prices is None
    assert ds.tasks is None


@pytest.mark.parametrize(
    ("bad", "expected"),
    [
        ("{not json", "invalid JSON"),
        ("[1, 2]", "expected a JSON object"),
        (row(1, prompt=None), "field 'prompt' is missing"),
        ({k: v for k, v in row(1).items() if k != "prompt"}, "field 'prompt' is missing"),
        (row(1, prompt=3), "field 'prompt' is a int; expected a string"),
        (row(1, scores={"a": 1.5, "b": 0.0}), "scores['a'] = 1.5; expected a number in [0, 1]"),
        (row(1, scores={"a": "x", "b": 0.0}), "scores['a'] = 'x'; expected a number in [0, 1]"),
        (row(1, scores={"a": True, "b": 0.0}), "expected a number in [0, 1]"),
        (row(1, scores={"a": 0.5}), "scores lacks model(s) b"),
        (row(1, scores={"a": 0.5, "b": 0.5, "c": 0.1}), "unknown model(s) c"),
        (row(1, costs={"a": -1, "b": 0.0}), "costs['a'] = -1; expected a number >= 0"),
        (row(1, costs=[1, 2]), "field 'costs' must be a non-empty object"),
        (row(0), "duplicate id 'r0' (first on line 1)"),
    ],
)
def test_malformed_rows_name_file_and_line(tmp_path: Path, bad: Any, expected: str) -> None:
    path = write_rows(tmp_path, [row(0), bad])
    with pytest.raises(DatasetError) as err:
        load_dataset(path)
    assert f"{path}:2: " in err.value.message
    assert expected in err.value.message


def test_empty_missing_and_unpriced(tmp_path: Path) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n", encoding="utf-8")
    with pytest.raises(DatasetError, match="no rows"):
        load_dataset(empty)
    with pytest.raises(DatasetError, match="no such dataset file"):
        load_dataset(tmp_path / "nope.jsonl")
    path = write_rows(tmp_path, [row(0)])
    (tmp_path / "models.json").write_text(json.dumps({"a": PRICES["a"]}), encoding="utf-8")
    with pytest.raises(DatasetError, match=r"no prices for model\(s\) b"):
        load_dataset(path)
    (tmp_path / "models.json").write_text(json.dumps({"a": {"x": 1}}), encoding="utf-8")
    with pytest.raises(DatasetError, match="needs numeric input_price_per_mtok"):
        load_dataset(path)


def test_load_prompts_needs_only_prompt(tmp_path: Path) -> None:
    path = tmp_path / "p.jsonl"
    path.write_text('{"id": "x", "prompt": "hi"}\n{"prompt": "there"}\n', encoding="utf-8")
    rows = load_prompts(path)
    assert [(r.id, r.prompt) for r in rows] == [("x", "hi"), ("line-2", "there")]
    path.write_text('{"id": "x"}\n', encoding="utf-8")
    with pytest.raises(DatasetError, match=r"p\.jsonl:1: field 'prompt' is missing"):
        load_prompts(path)


def test_builtin_dcrouter_resolves_by_name() -> None:
    assert "dcrouter" in builtin_datasets()
    path = resolve_data_path("dcrouter")
    assert path.name == "train.jsonl"
    assert (path.parent / "LICENSE").is_file()
    assert (path.parent / "SOURCE.md").is_file()
    with pytest.raises(DatasetError, match="built-in dataset name"):
        resolve_data_path("no-such-dataset")


def test_write_then_load_round_trip(tmp_path: Path) -> None:
    ds = load_dataset(write_rows(tmp_path / "in", [row(0), row(1)]))
    out = write_dataset(ds, tmp_path / "out")
    back = load_dataset(out / "train.jsonl")
    assert back.ids == ds.ids
    assert back.prompts == ds.prompts
    assert back.tasks == ds.tasks
    assert np.array_equal(back.scores, ds.scores)
    assert np.array_equal(back.costs, ds.costs)
    assert back.prices == ds.prices


def _wide(path: Path, rows: list[dict[str, Any]]) -> Path:
    header = list(rows[0])
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=header)
        writer.writeheader()
        writer.writerows(rows)
    return path


WIDE = [
    {
        "sample_id": "mmlu.1",
        "prompt": "What is 2+2?\nAnswer, briefly.",
        "eval_name": "mmlu",
        "gpt-4": 1.0,
        "gpt-4|total_cost": 0.003,
        "gpt-4|model_response": "4",
        "llama": 0.0,
        "llama|total_cost": 0.0001,
        "llama|model_response": "5",
        "oracle_model_to_route_to": "gpt-4",
    },
    {
        "sample_id": "gsm8k.7",
        "prompt": 'Quote: "a, b"',
        "eval_name": "gsm8k",
        "gpt-4": 1.0,
        "gpt-4|total_cost": 0.002,
        "gpt-4|model_response": "x",
        "llama": 0.5,
        "llama|total_cost": 0.0002,
        "llama|model_response": "y",
        "oracle_model_to_route_to": "llama",
    },
]


def test_convert_routerbench_round_trip(tmp_path: Path) -> None:
    ds = convert_routerbench(_wide(tmp_path / "wide.csv", WIDE))
    assert ds.models == ("gpt-4", "llama")
    assert ds.ids == ("mmlu.1", "gsm8k.7")
    assert ds.prompts == (WIDE[0]["prompt"], WIDE[1]["prompt"])
    assert ds.tasks == ("mmlu", "gsm8k")
    assert ds.scores.tolist() == [[1.0, 0.0], [1.0, 0.5]]
    assert ds.costs.tolist() == [[0.003, 0.0001], [0.002, 0.0002]]
    back = load_dataset(write_dataset(ds, tmp_path / "canon") / "train.jsonl")
    assert back.ids == ds.ids
    assert back.prompts == ds.prompts
    assert np.array_equal(back.scores, ds.scores)
    assert np.array_equal(back.costs, ds.costs)


def test_convert_routerbench_errors(tmp_path: Path) -> None:
    bad = [dict(WIDE[0]), dict(WIDE[1], llama="n/a")]  # row 1 spans lines 2-3 (a newline)
    path = _wide(tmp_path / "bad.csv", bad)
    with pytest.raises(
        DatasetError, match=r"bad\.csv:4: column 'llama' = 'n/a'; expected a number"
    ):
        convert_routerbench(path)
    no_cost = [{"prompt": "x", "m": 1}]
    with pytest.raises(DatasetError, match=re.escape("no '<model>|total_cost' columns")):
        convert_routerbench(_wide(tmp_path / "nocost.csv", no_cost))
    with pytest.raises(DatasetError, match="parquet needs pyarrow|no such file"):
        convert_routerbench(tmp_path / "missing.parquet")


def test_load_dataset_reads_wide_tables(tmp_path: Path) -> None:
    path = _wide(tmp_path / "bench.csv", WIDE)
    ds = load_dataset(path)
    assert ds.models == ("gpt-4", "llama")
    assert ds.prices is None
    assert load_dataset(path, None).scores.tolist() == [[1.0, 0.0], [1.0, 0.5]]
