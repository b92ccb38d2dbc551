"""Junk router artifacts are refused at load with a ConfigError that names the file and the
expectation: never a traceback, a hang, or a memory blow-up."""

from __future__ import annotations

import json
import threading
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from routers.artifact_junk import (
    TINY,
    Arrays,
    add_member,
    claim_directory_size,
    claim_size,
    copy,
    deep_json,
    edit_arrays,
    edit_manifest,
    grow,
    make_fifo,
    npy_bytes,
    npy_header_only,
    release_fifo,
    replace_with_dir,
    replace_with_symlink,
    train,
)

from polyroute.dataset import RoutingDataset
from polyroute.errors import ConfigError
from polyroute.routers.artifact import load_router
from polyroute.selectors.learned import LearnedSelector

HANG_LIMIT_S = 10.0


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, toy: RoutingDataset) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("trained")
    return {name: train(name, toy, root / name) for name in TINY}


@pytest.fixture
def knn(trained: dict[str, Path], tmp_path: Path) -> Path:
    return copy(trained["knn"], tmp_path / "knn")


def refused(path: Path, *needles: str) -> str:
    """Load ``path``, expect a ConfigError whose message holds every needle; return it."""
    with pytest.raises(ConfigError) as info:
        load_router(path)
    message = info.value.message
    for needle in needles:
        assert needle in message, message
    return message


@pytest.fixture
def bounded() -> Iterator[Callable[[Path, Path], BaseException | None]]:
    """Load an artifact in a thread; fail (instead of hanging) if it takes over HANG_LIMIT_S."""
    fifos: list[Path] = []

    def load(path: Path, fifo: Path) -> BaseException | None:
        fifos.append(fifo)
        out: list[BaseException | None] = []

        def run() -> None:
            try:
                load_router(path)
                out.append(None)
            except BaseException as exc:
                out.append(exc)

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        thread.join(HANG_LIMIT_S)
        assert not thread.is_alive(), f"loading {path} hung on the FIFO {fifo}"
        return out[0]

    yield load
    for fifo in fifos:
        release_fifo(fifo)  # a reader stuck in open() gets EOF and its thread ends


def test_every_tiny_router_loads(trained: dict[str, Path]) -> None:
    for name, path in trained.items():
        assert load_router(path).predict(["hello"]).shape == (1, 2), name


# --------------------------------------------------------------------------- manifest.json


def test_deeply_nested_manifest(knn: Path) -> None:
    (knn / "manifest.json").write_text(deep_json(200_000))
    refused(knn, "manifest.json", "nested deeper than")


def test_nesting_below_the_recursion_limit_is_still_bounded(knn: Path) -> None:
    edit_manifest(knn, lambda m: m["info"].update(deep=json.loads(deep_json(100))))
    refused(knn, "manifest.json", "nested deeper than 64")


def test_oversized_manifest(knn: Path) -> None:
    text = (knn / "manifest.json").read_text()
    (knn / "manifest.json").write_text(text + " " * (5 << 20))
    refused(knn, "manifest.json", "4 MiB")


@pytest.mark.parametrize("text", ["[]", "3", "null", '"polyroute.router"'])
def test_manifest_that_is_not_an_object(knn: Path, text: str) -> None:
    (knn / "manifest.json").write_text(text)
    refused(knn, "manifest.json", "JSON object")


def test_manifest_that_is_not_utf8(knn: Path) -> None:
    (knn / "manifest.json").write_bytes(b'{"format": "\xff\xfe"}')
    refused(knn, "manifest.json", "unreadable manifest")


def test_manifest_with_an_integer_too_long_to_parse(knn: Path) -> None:
    text = (knn / "manifest.json").read_text()
    (knn / "manifest.json").write_text(text.replace('"k": 5', '"k": ' + "9" * 5000))
    refused(knn, "manifest.json", "unreadable manifest")


@pytest.mark.parametrize("key", ["format", "format_version", "router", "params", "models", "state"])
def test_manifest_missing_key(knn: Path, key: str) -> None:
    edit_manifest(knn, lambda m: m.pop(key))
    refused(knn, "manifest.json", key)


@pytest.mark.parametrize(
    ("key", "value", "needle"),
    [
        ("format_version", True, "format_version"),
        ("format_version", "1", "format_version"),
        ("router", ["knn"], "'router'"),
        ("params", [], "'params'"),
        ("models", "small,big", "'models'"),
        ("models", [1, 2], "'models'"),
        ("models", [], "'models'"),
        ("models", ["small", "small"], "'models'"),
        ("models", ["small", ""], "'models'"),
        ("state", None, "'state'"),
        ("encoder", 7, "'encoder'"),
        ("info", [], "'info'"),
        ("versions", "1.0", "'versions'"),
    ],
)
def test_manifest_field_of_the_wrong_type(knn: Path, key: str, value: Any, needle: str) -> None:
    edit_manifest(knn, lambda m: m.update({key: value}))
    refused(knn, "manifest.json", needle)


def test_hyperparameter_of_the_wrong_type(knn: Path) -> None:
    edit_manifest(knn, lambda m: m["params"].update(prior="heavy"))
    refused(knn, "manifest.json", "prior", "does not match router 'knn'")


@pytest.mark.parametrize(("key", "value"), [("k", 0), ("k", "abc"), ("k", 2.5), ("k", None)])
def test_fitted_state_value_of_the_wrong_kind(knn: Path, key: str, value: Any) -> None:
    edit_manifest(knn, lambda m: m["state"].update({key: value}))
    refused(knn, "manifest.json", f"state.{key}")


def test_indicator_choice_out_of_range(trained: dict[str, Path], tmp_path: Path) -> None:
    path = copy(trained["best-single"], tmp_path / "best")
    edit_manifest(path, lambda m: m["state"].update(choice=7))
    refused(path, "manifest.json", "state.choice", "models")


def test_unknown_encoder(knn: Path) -> None:
    edit_manifest(knn, lambda m: m["state"].update(encoder_id="bert"))
    refused(knn, "encoder_id", "bert")


def test_hyperparameters_that_predict_nan_are_refused(
    trained: dict[str, Path], tmp_path: Path
) -> None:
    path = copy(trained["cluster"], tmp_path / "cluster")
    edit_manifest(path, lambda m: m["params"].update(temperature=0.0))
    refused(path, "non-finite")


@pytest.mark.parametrize("target", ["/dev/zero", "/"])
def test_manifest_symlink_to_a_device_or_directory(knn: Path, target: str) -> None:
    replace_with_symlink(knn / "manifest.json", target)
    refused(knn, "manifest.json", "regular file")


def test_manifest_that_is_a_directory(knn: Path) -> None:
    replace_with_dir(knn / "manifest.json")
    refused(knn, "manifest.json", "regular file", "directory")


def test_manifest_that_is_a_fifo_does_not_hang(
    knn: Path, bounded: Callable[[Path, Path], BaseException | None]
) -> None:
    make_fifo(knn / "manifest.json")
    exc = bounded(knn, knn / "manifest.json")
    assert isinstance(exc, ConfigError), exc
    assert "manifest.json" in exc.message and "FIFO" in exc.message


# --------------------------------------------------------------------------- arrays.npz: the file


def test_arrays_that_are_a_fifo_do_not_hang(
    knn: Path, bounded: Callable[[Path, Path], BaseException | None]
) -> None:
    make_fifo(knn / "arrays.npz")
    exc = bounded(knn, knn / "arrays.npz")
    assert isinstance(exc, ConfigError), exc
    assert "arrays.npz" in exc.message and "regular file" in exc.message


@pytest.mark.parametrize(
    ("target", "kind"), [("/dev/zero", "a character device"), ("/", "a directory")]
)
def test_arrays_symlink_to_a_device_or_directory(knn: Path, target: str, kind: str) -> None:
    replace_with_symlink(knn / "arrays.npz", target)
    refused(knn, "arrays.npz", "regular file", kind)


def test_arrays_that_are_a_directory(knn: Path) -> None:
    replace_with_dir(knn / "arrays.npz")
    refused(knn, "arrays.npz", "regular file")


def test_arrays_that_are_not_a_zip(knn: Path) -> None:
    (knn / "arrays.npz").write_bytes(b"\x93NUMPY junk" * 100)
    refused(knn, "arrays.npz", "not a zip")


def test_truncated_arrays(knn: Path) -> None:
    data = (knn / "arrays.npz").read_bytes()
    (knn / "arrays.npz").write_bytes(data[: len(data) // 2])
    refused(knn, "arrays.npz")


def test_member_that_is_not_npy(knn: Path) -> None:
    add_member(knn, "notes.txt", b"hello")
    refused(knn, "arrays.npz", "'notes.txt'", ".npy")


def test_member_that_is_not_a_valid_npy(knn: Path) -> None:
    add_member(knn, "state/extra.npy", b"not an npy file at all")
    refused(knn, "arrays.npz", "state/extra")


def test_zip_bomb_member_is_refused_from_the_zip_directory(knn: Path) -> None:
    claim_size(knn / "arrays.npz", "state/y.npy", 0xFFFF_FFF0)  # ~4 GiB announced
    refused(knn, "arrays.npz", "1 GiB", "uncompressed")


def test_huge_zip_directory_is_refused_before_it_is_parsed(knn: Path) -> None:
    claim_directory_size(knn / "arrays.npz", 0x7FFF_FFFF)
    refused(knn, "arrays.npz", "central directory", "4 MiB")


def test_npy_header_declaring_more_data_than_the_member_holds(knn: Path) -> None:
    add_member(knn, "state/extra.npy", npy_header_only((1 << 27,)))  # 1 GiB declared
    refused(knn, "arrays.npz", "state/extra", "declares")


def test_too_many_members(knn: Path) -> None:
    with zipfile.ZipFile(knn / "arrays.npz", "a") as zf:
        one = npy_bytes(np.zeros(1))
        for i in range(5000):
            zf.writestr(f"junk/{i}.npy", one)
    refused(knn, "arrays.npz", "4096")


def test_pickled_member_is_refused(knn: Path) -> None:
    edit_arrays(knn, lambda a: a.update({"state/y": np.array([{"evil": 1}], dtype=object)}))
    refused(knn, "arrays.npz", "'state/y'")


# --------------------------------------------------------------------------- arrays: shapes, dtypes


ROUTER_ARRAYS = {
    "knn": ["cost/intercept", "cost/slope", "state/x", "state/y", "state/proj_mean", "state/proj"],
    "logistic": ["state/weights", "state/bias"],
    "mlp": ["state/w1", "state/b1", "state/w2", "state/b2"],
    "mf": ["state/proj", "state/proj_bias", "state/model_emb", "state/model_bias"],
    "cluster": ["state/centres", "state/rates"],
    "stack": ["state/meta_w", "state/meta_b", "state/base0/x", "state/base1/weights"],
    "oracle": ["state/prompts", "state/scores"],
}
ENCODER_ARRAYS = ["state/enc/tfidf_terms", "state/enc/tfidf_idf", "state/enc/tfidf_components"]
CASES = [(n, k) for n, keys in ROUTER_ARRAYS.items() for k in keys]
CASES += [("mlp", k) for k in ENCODER_ARRAYS]


@pytest.mark.parametrize(("name", "key"), CASES)
def test_array_of_the_wrong_shape(
    trained: dict[str, Path], tmp_path: Path, name: str, key: str
) -> None:
    path = copy(trained[name], tmp_path / name)
    edit_arrays(path, lambda a: a.update({key: grow(a[key])}))
    refused(path, "arrays.npz", "array 'state/" if key.startswith("state/") else "array '")


def test_wrong_shape_names_the_array_and_the_expectation(knn: Path) -> None:
    edit_arrays(knn, lambda a: a.update({"state/x": a["state/x"][:, :-1]}))
    message = refused(knn, "arrays.npz", "'state/x'", "expected shape")
    assert "features=" in message


def test_wrong_number_of_models(knn: Path) -> None:
    edit_arrays(knn, lambda a: a.update({"state/y": a["state/y"][:, :1]}))
    refused(knn, "arrays.npz", "'state/y'", "models=2")


@pytest.mark.parametrize(
    ("key", "value", "needle"),
    [
        ("state/x", lambda a: a.astype(np.int64), "float"),
        ("state/x", lambda a: a.astype(np.complex64), "float"),
        ("state/y", lambda a: a.astype(np.str_), "float"),
        ("state/enc/tfidf_terms", lambda a: np.arange(len(a), dtype=np.float32), "string"),
        ("state/x", lambda a: a[None], "expected shape"),
    ],
)
def test_array_of_the_wrong_kind(
    knn: Path, key: str, value: Callable[[Any], Any], needle: str
) -> None:
    edit_arrays(knn, lambda a: a.update({key: value(a[key])}))
    refused(knn, "arrays.npz", f"'{key}'", needle)


@pytest.mark.parametrize(("key", "bad"), [("state/y", np.nan), ("cost/slope", np.inf)])
def test_non_finite_values(knn: Path, key: str, bad: float) -> None:
    def poison(arrays: Arrays) -> None:
        arrays[key] = arrays[key].copy()
        arrays[key].flat[0] = bad

    edit_arrays(knn, poison)
    refused(knn, "arrays.npz", f"'{key}'", "finite")


def test_unexpected_array(knn: Path) -> None:
    edit_arrays(knn, lambda a: a.update({"state/junk": np.zeros(3)}))
    refused(knn, "arrays.npz", "'state/junk'", "unexpected")


def test_missing_array(knn: Path) -> None:
    edit_arrays(knn, lambda a: a.pop("state/y"))
    refused(knn, "arrays.npz", "'state/y'", "missing")


# --------------------------------------------------------------------------- the gateway adapter


def test_selector_refuses_a_bad_shape_before_warm_up(knn: Path) -> None:
    edit_arrays(knn, lambda a: a.update({"state/x": a["state/x"][:, :-1]}))
    with pytest.raises(ConfigError, match=r"select\.router .*'state/x'"):
        LearnedSelector(str(knn))


@pytest.mark.parametrize(
    "info",
    [
        [],
        {"calibration": "cheap"},
        {"calibration": [{"w": "abc", "cost_fraction": 0.1}]},
        {"calibration": [{"w": 1.0, "cost_fraction": None}]},
    ],
)
def test_selector_refuses_a_junk_calibration_table(knn: Path, info: Any) -> None:
    edit_manifest(knn, lambda m: m.update(info=info))
    with pytest.raises(ConfigError, match=r"select\.router"):
        LearnedSelector(str(knn), target_cost_fraction=0.5)
