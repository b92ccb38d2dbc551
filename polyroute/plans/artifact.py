"""A trained plan on disk: one ``manifest.json`` (JSON only, never pickle).

::

    {"format": "polyroute.plan", "format_version": 1, "kind": "cascade",
     "stages": [{"model": "gpt-4o-mini", "accept": {"statistic": "logprob_mean", "gt": -0.12}},
                {"model": "llama3.1-405b"}],
     "target": {"cost_fraction": 0.5},          # or {"willingness_to_pay": W}
     "cv": {"quality": ..., "cost": ..., "cost_fraction": ..., "folds": 5, "repeats": 2},
     "reference": {"best_single": NAME, "quality": q, "cost": c},
     "trained_on": {...}, "versions": {"polyroute", "numpy", "python"}}

Every stage but the last accepts its answer when the statistic
(:mod:`polyroute.plans.confidence`) is greater than ``gt``; the last has no rule.
:func:`load_cascade` (what the gateway calls) validates all of it and raises
:class:`~polyroute.errors.ConfigError` naming the file and the field.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from polyroute.errors import ConfigError
from polyroute.plans.confidence import STATISTICS

FORMAT = "polyroute.plan"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"


class CascadeStage(NamedTuple):
    """One stage: its model, and (all but the last) the statistic and its ``gt`` threshold."""

    model: str
    statistic: str | None
    threshold: float | None


@dataclass(frozen=True)
class CascadeSpec:
    """A loaded cascade artifact."""

    stages: tuple[CascadeStage, ...]
    target: Mapping[str, float]
    path: str
    cv: Mapping[str, Any] = field(default_factory=dict)
    reference: Mapping[str, Any] = field(default_factory=dict)

    @property
    def models(self) -> tuple[str, ...]:
        return tuple(s.model for s in self.stages)


def _stage_json(stage: CascadeStage, last: bool) -> dict[str, Any]:
    if last:
        return {"model": stage.model}
    return {"model": stage.model, "accept": {"statistic": stage.statistic, "gt": stage.threshold}}


def save_cascade(
    out: str | Path,
    stages: tuple[CascadeStage, ...],
    target: Mapping[str, float],
    info: Mapping[str, Any],
) -> Path:
    """Write the artifact directory ``out`` (``info``: cv, reference, trained_on, ...)."""
    from polyroute.routers._artifact_files import versions

    manifest = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "kind": "cascade",
        "stages": [_stage_json(s, i == len(stages) - 1) for i, s in enumerate(stages)],
        "target": dict(target),
        **info,
        "versions": versions(),
    }
    directory = Path(out)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        file = directory / MANIFEST
        file.write_text(json.dumps(manifest, indent=1, allow_nan=False) + "\n")
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{out}: cannot write the plan artifact ({exc})") from None
    _ = load_cascade(directory)  # what we wrote must load
    return file


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ConfigError(f"{where}: expected a finite number, got {json.dumps(value)[:60]}")
    return float(value)


def _stage(raw: Any, where: str, last: bool) -> CascadeStage:
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected an object with 'model'")
    model = raw.get("model")
    if not isinstance(model, str) or not model:
        raise ConfigError(f"{where}.model: expected a model name")
    accept = raw.get("accept")
    if last:
        if accept is not None:
            raise ConfigError(f"{where}.accept: the last stage always answers; expected no rule")
        return CascadeStage(model, None, None)
    if not isinstance(accept, dict):
        raise ConfigError(f"{where}.accept: expected {{'statistic': ..., 'gt': number}}")
    statistic = accept.get("statistic")
    if statistic not in STATISTICS:
        raise ConfigError(
            f"{where}.accept.statistic: expected one of {', '.join(STATISTICS)}, "
            f"got {json.dumps(statistic)[:60]}"
        )
    return CascadeStage(model, str(statistic), _number(accept.get("gt"), f"{where}.accept.gt"))


def _target(raw: Any, where: str) -> dict[str, float]:
    keys = ("cost_fraction", "willingness_to_pay")
    if not isinstance(raw, dict) or len(raw) != 1 or next(iter(raw)) not in keys:
        raise ConfigError(
            f"{where}: expected {{'cost_fraction': F}} or {{'willingness_to_pay': W}}"
        )
    key, value = next(iter(raw.items()))
    return {key: _number(value, f"{where}.{key}")}


def _header(manifest: Any, file: Path) -> None:
    if not isinstance(manifest, dict):
        raise ConfigError(f"{file}: expected a JSON object (a plan manifest)")
    checks = (("format", FORMAT), ("format_version", FORMAT_VERSION), ("kind", "cascade"))
    for key, want in checks:
        if manifest.get(key) != want or isinstance(manifest.get(key), bool):
            got = json.dumps(manifest.get(key))[:60]
            raise ConfigError(f"{file}: {key}: expected {json.dumps(want)}, got {got}")


def load_cascade(path: str | Path) -> CascadeSpec:
    """Load and validate a cascade artifact (its directory or its ``manifest.json``)."""
    from polyroute.routers._artifact_files import read_json

    p = Path(path)
    file = p / MANIFEST if p.is_dir() or not p.suffix else p
    if not file.exists():
        raise ConfigError(f"{file}: no such file; expected a plan artifact from 'polyroute train'")
    manifest = read_json(file)
    _header(manifest, file)
    raw = manifest.get("stages")
    if not isinstance(raw, list) or not raw:
        raise ConfigError(f"{file}: stages: expected a non-empty list of stages")
    stages = tuple(_stage(s, f"{file}: stages[{i}]", i == len(raw) - 1) for i, s in enumerate(raw))
    models = [s.model for s in stages]
    if len(set(models)) != len(models):
        raise ConfigError(f"{file}: stages: a model appears twice ({', '.join(models)})")
    cv, reference = manifest.get("cv", {}), manifest.get("reference", {})
    for key, value in (("cv", cv), ("reference", reference)):
        if not isinstance(value, dict):
            raise ConfigError(f"{file}: {key}: expected an object")
    return CascadeSpec(
        stages=stages,
        target=_target(manifest.get("target"), f"{file}: target"),
        path=str(file),
        cv=cv,
        reference=reference,
    )


__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "CascadeSpec",
    "CascadeStage",
    "load_cascade",
    "save_cascade",
]
