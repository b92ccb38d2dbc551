"""Save and load trained learned routers as a directory — JSON + numpy, never pickle.

Layout of an artifact directory::

    manifest.json   {"format": "polyroute.router", "format_version": 1,
                     "router": <registry name>, "params": {...hyperparameters},
                     "models": [...], "encoder": <encoder id or null>,
                     "state": {...fitted JSON metadata}, "info": {...},
                     "versions": {"polyroute", "numpy", "python"}}
    arrays.npz      every fitted array (loaded with ``allow_pickle=False``)

Loading looks the router class up in the learned-router registry by name, so
an artifact can only instantiate a known router; it never executes code from
the artifact.  A junk artifact is refused at load with a ConfigError naming the
file, the field or array, and what was expected: the files must be regular and
within size limits (``_artifact_files``), the manifest's fields and the
router's hyperparameters must have the right types, every array the shape and
dtype the router expects (``_artifact_state``), and the loaded router must
predict finite values.  Public API: :func:`save_router`, :func:`load_router`,
:func:`read_manifest`.
"""

from __future__ import annotations

import json
import os
import reprlib
from pathlib import Path
from typing import Any

import numpy as np

from polyroute.errors import ConfigError
from polyroute.routers._artifact_files import read_json, read_npz, versions
from polyroute.routers._artifact_state import SavedState
from polyroute.routers.base import Arrays, CostModel, JSONDict, LearnedRouter, validate_params
from polyroute.routers.shrink import Shrinkage

FORMAT = "polyroute.router"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
ARRAYS = "arrays.npz"


def _registry_name(router: LearnedRouter) -> str:
    from polyroute.routers.learned import ROUTERS

    for name in ROUTERS.names():
        if ROUTERS.get(name) is type(router):
            return name
    raise ConfigError(f"{type(router).__name__} is not in the learned-router registry")


def save_router(router: LearnedRouter, path: str | Path, info: JSONDict | None = None) -> Path:
    """Write ``router`` (fitted) to the directory ``path``; returns the directory.

    A router that delegates to a chosen inner router (``auto``) saves that router,
    with its selection report in ``info``.
    """
    inner = getattr(router, "artifact_router", None)
    if callable(inner):
        chosen, extra = inner()
        return save_router(chosen, path, {**extra, **(info or {})})
    router._check_fitted()
    state, arrays = router._get_state()
    out = Path(path)
    out.mkdir(parents=True, exist_ok=True)
    manifest = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "router": _registry_name(router),
        "params": router.get_params(),
        "models": list(router.models_),
        "encoder": state.get("encoder_id"),
        "state": state,
        "info": info or {},
        "versions": versions(),
    }
    all_arrays: Arrays = {
        "cost/intercept": router.cost_model_.intercept,
        "cost/slope": router.cost_model_.slope,
        **{"state/" + k: v for k, v in arrays.items()},
    }
    if router.shrinkage_ is not None:
        all_arrays["shrink/mean"] = router.shrinkage_.mean
        all_arrays["shrink/tau"] = router.shrinkage_.tau
    with (out / ARRAYS).open("wb") as fh:
        np.savez(fh, **all_arrays)  # type: ignore[arg-type]
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return out


_FIELDS: tuple[tuple[str, type | tuple[type, ...], str], ...] = (
    ("router", str, "a string"),
    ("params", dict, "an object"),
    ("models", list, "an array"),
    ("state", dict, "an object"),
)
_OPTIONAL: tuple[tuple[str, type | tuple[type, ...], str], ...] = (
    ("encoder", (str, type(None)), "a string or null"),
    ("info", dict, "an object"),
    ("versions", dict, "an object"),
)


def read_manifest(path: str | Path) -> JSONDict:
    """The parsed, checked ``manifest.json`` of the artifact at ``path``."""
    file = Path(path) / MANIFEST
    if not os.path.lexists(file):
        raise ConfigError(
            f"{path}: not a router artifact (no {MANIFEST}); train one with 'polyroute train'"
        )
    manifest: Any = read_json(file)
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ConfigError(f'{file}: expected a JSON object with "format": "{FORMAT}"')
    version = manifest.get("format_version")
    if type(version) is not int or version != FORMAT_VERSION:
        raise ConfigError(
            f"{file}: format_version {version!r} is not supported "
            f"(expected {FORMAT_VERSION}); retrain the router"
        )
    for key, kinds, text in _FIELDS:
        _check_field(manifest, file, key, kinds, text)
    for key, kinds, text in _OPTIONAL:
        if key in manifest:
            _check_field(manifest, file, key, kinds, text)
    _check_models(manifest["models"], file)
    return manifest


def _check_field(
    manifest: JSONDict, file: Path, key: str, kinds: type | tuple[type, ...], text: str
) -> None:
    if key not in manifest:
        raise ConfigError(f"{file}: field {key!r} is missing (expected {text})")
    value = manifest[key]
    if not isinstance(value, kinds):
        names = {dict: "an object", list: "an array", str: "a string", bool: "a boolean"}
        got = "null" if value is None else names.get(type(value), "a number")
        raise ConfigError(f"{file}: field {key!r} must be {text}, got {got}")


def _check_models(models: list[Any], file: Path) -> None:
    if not models:
        raise ConfigError(f"{file}: field 'models' must list at least one model, got []")
    seen: set[str] = set()
    for i, name in enumerate(models):
        if not isinstance(name, str) or not name:
            got = reprlib.repr(name)
            raise ConfigError(f"{file}: field 'models' item {i} must be a model name, got {got}")
        if name in seen:
            raise ConfigError(f"{file}: field 'models' lists {reprlib.repr(name)} twice")
        seen.add(name)


def load_serving_router(path: str | Path) -> LearnedRouter:
    """:func:`load_router`, set up for the request path (``for_serving``: no disk cache,
    MiniLM on ONNX Runtime without torch), as the learned selector and the difficulty
    signal use it."""
    router = load_router(path)
    serving = getattr(router, "for_serving", None)
    if callable(serving):
        serving()
    return router


def load_router(path: str | Path) -> LearnedRouter:
    """Rebuild the fitted router saved at ``path`` (a directory written by :func:`save_router`).

    Every array is checked against what the manifest and the router expect, and the
    router makes one prediction on a neutral input, so a junk artifact fails here
    (a ConfigError) and never later, at warm-up or on a request.
    """
    from polyroute.routers.learned import get_router

    root = Path(path)
    manifest = read_manifest(root)
    name = manifest["router"]
    cls = get_router(name, f"{root / MANIFEST}: router")
    where = f"{root / MANIFEST}: field 'params' does not match router {name!r}"
    params = validate_params(cls, manifest["params"], where)
    arrays = read_npz(root / ARRAYS)
    state = SavedState(
        arrays,
        manifest["state"],
        manifest_file=str(root / MANIFEST),
        arrays_file=str(root / ARRAYS),
        router=name,
    )
    models = tuple(manifest["models"])
    state.bind("models", len(models), f"models = the {len(models)} listed in {MANIFEST}")
    try:
        router = cls(**params)
        router.models_ = models
        router.cost_model_ = CostModel(
            state.array("cost/intercept", ("models",)), state.array("cost/slope", ("models",))
        )
        router._set_state(state.sub("state/"))
        router.shrinkage_ = _shrinkage(state, root / ARRAYS)
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise ConfigError(f"{root}: artifact does not match router {name!r}: {exc!r}") from exc
    state.fail_unused()
    _probe(router, root / MANIFEST, name)
    return router


def _shrinkage(state: SavedState, file: Path) -> Shrinkage | None:
    """The saved shrinkage (``shrink/mean``, ``shrink/tau``), or None when absent."""
    if state.shape("shrink/mean") is None and state.shape("shrink/tau") is None:
        return None
    shrink = Shrinkage(
        state.array("shrink/mean", ("models",)), state.array("shrink/tau", ("models",))
    )
    if (shrink.tau < 0).any():
        raise ConfigError(f"{file}: array 'shrink/tau': expected values >= 0")
    return shrink


def _probe(router: LearnedRouter, where: Path, name: str) -> None:
    """One prediction on a neutral input: it must run and give finite ``[1 x models]`` values."""
    expected = (1, len(router.models_))
    try:
        with np.errstate(all="ignore"):
            out = np.asarray(router._probe(), dtype=np.float64)
    except (ArithmeticError, IndexError, KeyError, TypeError, ValueError) as exc:
        detail = f"{where}: router {name!r} cannot predict from this artifact: {exc!r}"
        raise ConfigError(detail) from exc
    if out.shape != expected:
        raise ConfigError(f"{where}: router {name!r} predicts shape {out.shape}, not {expected}")
    if not np.isfinite(out).all():
        raise ConfigError(
            f"{where}: router {name!r} predicts non-finite values with these params and "
            "arrays (on a neutral input); check field 'params'"
        )
