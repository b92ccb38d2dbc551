"""A cascade artifact round-trips, and a broken one is a ConfigError naming file and field."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from polyroute.errors import ConfigError
from polyroute.plans.artifact import CascadeStage, load_cascade, save_cascade

STAGES = (
    CascadeStage("small", "logprob_mean", -0.35),
    CascadeStage("medium", "verify", -0.01),
    CascadeStage("large", None, None),
)


def _write(tmp_path: Path) -> Path:
    save_cascade(
        tmp_path / "plan",
        STAGES,
        {"cost_fraction": 0.5},
        {"cv": {"quality": 0.9, "cost": 1e-4}, "reference": {"best_single": "large"}},
    )
    return tmp_path / "plan"


def test_round_trip(tmp_path: Path) -> None:
    spec = load_cascade(_write(tmp_path))
    assert spec.stages == STAGES
    assert spec.models == ("small", "medium", "large")
    assert spec.target == {"cost_fraction": 0.5}
    assert spec.cv["quality"] == 0.9
    assert spec.reference["best_single"] == "large"
    manifest = json.loads((tmp_path / "plan" / "manifest.json").read_text())
    assert manifest["format"] == "polyroute.plan"
    assert manifest["format_version"] == 1
    assert manifest["kind"] == "cascade"
    assert manifest["stages"][0] == {
        "model": "small",
        "accept": {"statistic": "logprob_mean", "gt": -0.35},
    }
    assert manifest["stages"][-1] == {"model": "large"}
    assert set(manifest["versions"]) >= {"polyroute", "numpy", "python"}
    assert sorted(p.name for p in (tmp_path / "plan").iterdir()) == ["manifest.json"]
    assert load_cascade(tmp_path / "plan" / "manifest.json").stages == STAGES


def _edit(manifest: dict[str, Any], field: str) -> None:
    if field == "gt":
        manifest["stages"][0]["accept"]["gt"] = "high"
    elif field == "statistic":
        manifest["stages"][1]["accept"]["statistic"] = "vibes"
    elif field == "last-accept":
        manifest["stages"][-1]["accept"] = {"statistic": "verify", "gt": 0}
    elif field == "model":
        del manifest["stages"][1]["model"]
    elif field == "stages":
        manifest["stages"] = []
    elif field == "format_version":
        manifest["format_version"] = 99
    elif field == "target":
        manifest["target"] = {"cost_fraction": "half"}


@pytest.mark.parametrize(
    ("field", "named"),
    [
        ("gt", "stages[0].accept.gt"),
        ("statistic", "stages[1].accept.statistic"),
        ("last-accept", "stages[2].accept"),
        ("model", "stages[1].model"),
        ("stages", "stages"),
        ("format_version", "format_version"),
        ("target", "target.cost_fraction"),
    ],
)
def test_a_corrupt_field_is_named(tmp_path: Path, field: str, named: str) -> None:
    plan = _write(tmp_path)
    file = plan / "manifest.json"
    manifest = json.loads(file.read_text())
    _edit(manifest, field)
    file.write_text(json.dumps(manifest))
    with pytest.raises(ConfigError) as info:
        load_cascade(plan)
    assert str(file) in info.value.message
    assert named in info.value.message


@pytest.mark.parametrize("text", ["", "{not json", "[1, 2]", '{"format": "polyroute.plan"}'])
def test_a_corrupt_manifest_names_the_file(tmp_path: Path, text: str) -> None:
    plan = _write(tmp_path)
    (plan / "manifest.json").write_text(text)
    with pytest.raises(ConfigError, match=str(plan / "manifest.json")):
        load_cascade(plan)


def test_a_missing_manifest_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=str(tmp_path / "manifest.json")):
        load_cascade(tmp_path)
