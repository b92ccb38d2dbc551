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
the artifact.  Public API: :func:`save_router`, :func:`load_router`,
:func:`read_manifest`.
"""

from __future__ import annotations

import json
import platform
import zipfile
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from polyroute.errors import ConfigError
from polyroute.routers.base import Arrays, CostModel, JSONDict, LearnedRouter

FORMAT = "polyroute.router"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
ARRAYS = "arrays.npz"


def _versions() -> dict[str, str]:
    try:
        ours = metadata.version("polyroute")
    except metadata.PackageNotFoundError:
        ours = "unknown"
    return {"polyroute": ours, "numpy": np.__version__, "python": platform.python_version()}


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
        "versions": _versions(),
    }
    all_arrays: Arrays = {
        "cost/intercept": router.cost_model_.intercept,
        "cost/slope": router.cost_model_.slope,
        **{"state/" + k: v for k, v in arrays.items()},
    }
    with (out / ARRAYS).open("wb") as fh:
        np.savez(fh, **all_arrays)  # type: ignore[arg-type]
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return out


def read_manifest(path: str | Path) -> JSONDict:
    """The parsed, checked ``manifest.json`` of the artifact at ``path``."""
    file = Path(path) / MANIFEST
    if not file.is_file():
        raise ConfigError(
            f"{path}: not a router artifact (no {MANIFEST}); train one with 'polyroute train'"
        )
    try:
        manifest: Any = json.loads(file.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{file}: unreadable manifest: {exc}") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ConfigError(f'{file}: expected a JSON object with "format": "{FORMAT}"')
    if manifest.get("format_version") != FORMAT_VERSION:
        raise ConfigError(
            f"{file}: format_version {manifest.get('format_version')!r} is not supported "
            f"(expected {FORMAT_VERSION}); retrain the router"
        )
    for key, kind in (("router", str), ("params", dict), ("models", list), ("state", dict)):
        if not isinstance(manifest.get(key), kind):
            raise ConfigError(f"{file}: field {key!r} must be a {kind.__name__}")
    return manifest


def _read_arrays(path: Path) -> Arrays:
    file = path / ARRAYS
    try:
        with np.load(file, allow_pickle=False) as npz:
            return {k: np.asarray(npz[k]) for k in npz.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise ConfigError(f"{file}: unreadable router arrays: {exc}") from exc


def load_router(path: str | Path) -> LearnedRouter:
    """Rebuild the fitted router saved at ``path`` (a directory written by :func:`save_router`)."""
    from polyroute.routers.learned import get_router

    root = Path(path)
    manifest = read_manifest(root)
    cls = get_router(manifest["router"], f"{root / MANIFEST}: router")
    arrays = _read_arrays(root)
    try:
        router = cls(**manifest["params"])
        router.models_ = tuple(str(m) for m in manifest["models"])
        router.cost_model_ = CostModel(arrays["cost/intercept"], arrays["cost/slope"])
        state = {k[len("state/") :]: v for k, v in arrays.items() if k.startswith("state/")}
        router._set_state(manifest["state"], state)
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        name = manifest["router"]
        raise ConfigError(f"{root}: artifact does not match router {name!r}: {exc!r}") from exc
    return router
