"""Hostile router artifacts for the loader tests, each made from a real, tiny trained router."""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import struct
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from polyroute.dataset import RoutingDataset
from polyroute.routers.artifact import save_router
from polyroute.routers.learned import get_router

Arrays = dict[str, npt.NDArray[Any]]

# tiny, fast hyperparameters (TF-IDF encoder, few epochs)
TINY: dict[str, dict[str, Any]] = {
    "knn": {"encoder": "tfidf", "k": 5},
    "logistic": {"encoder": "tfidf"},
    "mlp": {"encoder": "tfidf", "epochs": 2, "hidden": 8},
    "mf": {"encoder": "tfidf", "epochs": 2, "dim": 4},
    "cluster": {"encoder": "tfidf", "n_clusters": 4},
    "stack": {"encoder": "tfidf", "bases": ["knn", "logistic"], "folds": 2},
    "oracle": {},
    "best-single": {},
}


def train(name: str, dataset: RoutingDataset, out: Path) -> Path:
    """Fit the registered router ``name`` with :data:`TINY` hyperparameters and save it."""
    return save_router(get_router(name)(**TINY[name]).fit(dataset), out)


def copy(artifact: Path, dst: Path) -> Path:
    shutil.copytree(artifact, dst)
    return dst


def read_arrays(artifact: Path) -> Arrays:
    with np.load(artifact / "arrays.npz", allow_pickle=False) as npz:
        return {k: npz[k] for k in npz.files}


def write_arrays(artifact: Path, arrays: Arrays) -> None:
    with (artifact / "arrays.npz").open("wb") as fh:
        np.savez(fh, **arrays)  # type: ignore[arg-type]


def edit_arrays(artifact: Path, edit: Callable[[Arrays], object]) -> Path:
    arrays = read_arrays(artifact)
    edit(arrays)
    write_arrays(artifact, arrays)
    return artifact


def edit_manifest(artifact: Path, edit: Callable[[dict[str, Any]], object]) -> Path:
    """Apply ``edit`` to the manifest in place (its return value is ignored) and save it."""
    manifest = json.loads((artifact / "manifest.json").read_text())
    edit(manifest)
    (artifact / "manifest.json").write_text(json.dumps(manifest))
    return artifact


def deep_json(depth: int) -> str:
    return "[" * depth + "]" * depth


def grow(a: npt.NDArray[Any]) -> npt.NDArray[Any]:
    """``a`` with one more element along its first axis (a scalar becomes a vector)."""
    if a.ndim == 0:
        return np.stack([a, a])
    return np.concatenate([a, a[:1] if a.shape[0] else np.zeros((1, *a.shape[1:]), a.dtype)])


def make_fifo(file: Path) -> None:
    file.unlink()
    os.mkfifo(file)


def release_fifo(file: Path) -> None:
    """Unblock a reader stuck opening the FIFO ``file`` (it then reads EOF)."""
    with contextlib.suppress(OSError):
        os.close(os.open(file, os.O_WRONLY | os.O_NONBLOCK))


def replace_with_symlink(file: Path, target: str) -> None:
    file.unlink()
    file.symlink_to(target)


def replace_with_dir(file: Path) -> None:
    file.unlink()
    file.mkdir()


def npy_bytes(a: npt.NDArray[Any]) -> bytes:
    buf = io.BytesIO()
    np.save(buf, a, allow_pickle=False)
    return buf.getvalue()


def npy_header_only(shape: tuple[int, ...], descr: str = "<f8") -> bytes:
    """A ``.npy`` header declaring ``shape`` followed by just 16 bytes of data."""
    buf = io.BytesIO()
    header = {"descr": descr, "fortran_order": False, "shape": shape}
    np.lib.format.write_array_header_1_0(buf, header)
    return buf.getvalue() + bytes(16)


def add_member(artifact: Path, name: str, data: bytes) -> None:
    with zipfile.ZipFile(artifact / "arrays.npz", "a") as zf:
        zf.writestr(name, data)


def claim_size(npz: Path, member: str, size: int) -> None:
    """Rewrite the central-directory entry of ``member`` to claim ``size`` uncompressed bytes.

    The data stay small: this is the cheap form of a zip bomb (a member whose
    directory entry announces a huge file), enough to test a pre-check.
    """
    raw = bytearray(npz.read_bytes())
    with zipfile.ZipFile(npz) as zf:
        pos = zf.start_dir  # type: ignore[attr-defined]
    while raw[pos : pos + 4] == b"PK\x01\x02":
        name_len, extra_len, comment_len = struct.unpack_from("<HHH", raw, pos + 28)
        name = bytes(raw[pos + 46 : pos + 46 + name_len]).decode()
        if name == member:
            struct.pack_into("<I", raw, pos + 24, size)
            npz.write_bytes(bytes(raw))
            return
        pos += 46 + name_len + extra_len + comment_len
    raise AssertionError(f"{member} not in {npz}")


def claim_directory_size(npz: Path, size: int) -> None:
    """Make the zip's end record announce a central directory of ``size`` bytes."""
    raw = bytearray(npz.read_bytes())
    end = len(raw) - 22  # np.savez writes no archive comment
    assert raw[end : end + 4] == b"PK\x05\x06"
    struct.pack_into("<I", raw, end + 12, size)
    npz.write_bytes(bytes(raw))
