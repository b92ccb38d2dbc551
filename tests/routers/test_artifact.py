"""Router artifacts: a JSON manifest plus numpy arrays; loading never unpickles or runs code."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from polyroute.dataset import RoutingDataset
from polyroute.errors import ConfigError
from polyroute.routers.artifact import load_router, read_manifest, save_router
from polyroute.routers.learned.knn import KNNRouter
from polyroute.routers.learned.stack import StackRouter


@pytest.fixture(scope="module")
def artifact(tmp_path_factory: pytest.TempPathFactory, small: RoutingDataset) -> Path:
    router = StackRouter(encoder="tfidf", bases=["knn", "logistic"], folds=2).fit(small)
    return save_router(router, tmp_path_factory.mktemp("a") / "stack", {"note": "test"})


def test_manifest_names_router_params_models_encoder_versions(
    artifact: Path, small: RoutingDataset
) -> None:
    manifest = json.loads((artifact / "manifest.json").read_text())
    assert manifest["router"] == "stack"
    assert manifest["params"]["bases"] == ["knn", "logistic"]
    assert manifest["models"] == list(small.models)
    assert manifest["encoder"] == "tfidf"
    assert {"polyroute", "numpy", "python"} <= set(manifest["versions"])
    assert manifest["info"] == {"note": "test"}
    assert sorted(p.name for p in artifact.iterdir()) == ["arrays.npz", "manifest.json"]


def test_arrays_hold_no_objects(artifact: Path) -> None:
    with np.load(artifact / "arrays.npz", allow_pickle=False) as npz:
        for key in npz.files:
            assert npz[key].dtype != object, key
        assert "state/enc/tfidf_terms" in npz.files  # the vocabulary is a plain string array


def test_missing_directory_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no manifest.json"):
        load_router(tmp_path / "nope")


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda m: "not json", "unreadable manifest"),
        (lambda m: json.dumps({**m, "format": "other"}), "format"),
        (lambda m: json.dumps({**m, "format_version": 99}), "format_version 99"),
        (lambda m: json.dumps({**m, "router": "os:system"}), "unknown learned router"),
        (lambda m: json.dumps({**m, "params": {"nope": 1}}), "does not match router"),
    ],
)
def test_bad_manifest_is_a_config_error(
    artifact: Path, tmp_path: Path, edit: object, message: str
) -> None:
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "arrays.npz").write_bytes((artifact / "arrays.npz").read_bytes())
    manifest = json.loads((artifact / "manifest.json").read_text())
    (bad / "manifest.json").write_text(edit(manifest))  # type: ignore[operator]
    with pytest.raises(ConfigError, match=message):
        load_router(bad)


def test_pickled_arrays_are_refused(tmp_path: Path, small: RoutingDataset) -> None:
    path = save_router(KNNRouter(encoder="tfidf", k=5).fit(small), tmp_path / "knn")
    with np.load(path / "arrays.npz", allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    arrays["state/y"] = np.array([{"evil": 1}], dtype=object)  # would need pickle to load
    with (path / "arrays.npz").open("wb") as fh:
        np.savez(fh, **arrays)
    with pytest.raises(ConfigError, match="unreadable router arrays"):
        load_router(path)


def test_missing_array_is_a_config_error(tmp_path: Path, small: RoutingDataset) -> None:
    path = save_router(KNNRouter(encoder="tfidf", k=5).fit(small), tmp_path / "knn")
    with np.load(path / "arrays.npz", allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files if k != "state/x"}
    with (path / "arrays.npz").open("wb") as fh:
        np.savez(fh, **arrays)
    with pytest.raises(ConfigError, match="does not match router 'knn'"):
        load_router(path)


def test_read_manifest_checks_fields(artifact: Path) -> None:
    manifest = read_manifest(artifact)
    assert manifest["state"]["encoder_id"] == "tfidf"


def test_minilm_router_round_trip(
    tmp_path: Path, small: RoutingDataset, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("POLYROUTE_CACHE_DIR", str(tmp_path / "cache"))
    rows = small.subset(range(40))
    router = KNNRouter(encoder="minilm+tfidf", k=5).fit(rows)
    loaded = load_router(save_router(router, tmp_path / "art"))
    assert read_manifest(tmp_path / "art")["encoder"] == "minilm+tfidf"
    prompts = ["What is the capital of France?", "def add(a, b): return a + b"]
    np.testing.assert_allclose(loaded.predict(prompts), router.predict(prompts), atol=1e-6)
