"""Defensive reads of a router artifact's two files: regular files only, bounded sizes.

Every refusal is a :class:`~polyroute.errors.ConfigError` naming the file and the
limit.  The limits are generous for real routers (the largest shipped one, kNN
over 5,608 x 384 float32 embeddings, is about 10 MB):

- both files must be regular files (symlinks to them are fine): checked with
  ``stat`` before opening and with ``fstat`` after an ``O_NONBLOCK`` open, so a
  FIFO, a device or a directory is refused without ever blocking;
- ``manifest.json``: at most :data:`MANIFEST_MAX_BYTES`, UTF-8 JSON nested at most
  :data:`JSON_MAX_DEPTH` levels;
- ``arrays.npz``: a zip whose central directory (parsed whole by ``zipfile``) is at
  most :data:`NPZ_MAX_DIRECTORY`, of at most :data:`NPZ_MAX_MEMBERS` stored or deflated,
  unencrypted ``.npy`` members whose uncompressed sizes, read from the zip
  directory before anything is decompressed, total at most :data:`NPZ_MAX_BYTES`;
  each member's ``.npy`` header must declare no more data than the member holds,
  and no Python objects (arrays load with ``allow_pickle=False``).
"""

from __future__ import annotations

import json
import math
import os
import platform
import stat
import struct
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from importlib import metadata
from pathlib import Path
from typing import IO, Any

import numpy as np
import numpy.typing as npt

from polyroute.errors import ConfigError

MANIFEST_MAX_BYTES = 4 << 20
JSON_MAX_DEPTH = 64
NPZ_MAX_BYTES = 1 << 30
NPZ_MAX_MEMBERS = 4096
NPZ_MAX_DIRECTORY = 4 << 20  # central directory bytes: ~1 KiB per allowed member
_EOCD, _EOCD64_LOCATOR, _EOCD64 = b"PK\x05\x06", b"PK\x06\x07", b"PK\x06\x06"
_COMPRESSION = (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED)  # what np.savez(_compressed) writes
_READ_ERRORS = (
    OSError,
    EOFError,
    ValueError,
    zipfile.BadZipFile,
    zlib.error,
    NotImplementedError,
    RuntimeError,
)
_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def size_text(n: int) -> str:
    """``4 MiB``, ``1 GiB``: a limit as people say it."""
    for unit, shift in (("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if n >= 1 << shift and n % (1 << shift) == 0:
            return f"{n >> shift} {unit}"
    return f"{n:,} bytes"


def _require_regular(file: Path, mode: int) -> None:
    if stat.S_ISREG(mode):
        return
    kind = next((name for test, name in _KINDS if test(mode)), "a special file")
    raise ConfigError(f"{file}: must be a regular file, found {kind}")


@contextmanager
def open_regular(file: Path) -> Iterator[IO[bytes]]:
    """Open ``file`` for reading if (and only if) it is a regular file; never blocks."""
    try:
        _require_regular(file, os.stat(file).st_mode)
        fd = os.open(file, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError as exc:
        raise ConfigError(f"{file}: cannot open: {exc.strerror or exc}") from None
    try:
        _require_regular(file, os.fstat(fd).st_mode)  # it may have changed since the stat
        fh = os.fdopen(fd, "rb")
    except BaseException:
        with suppress(OSError):
            os.close(fd)
        raise
    with fh:
        yield fh


def read_json(file: Path, what: str = "manifest") -> Any:
    """The JSON value in ``file``, within :data:`MANIFEST_MAX_BYTES` and :data:`JSON_MAX_DEPTH`."""
    with open_regular(file) as fh:
        try:
            data = fh.read(MANIFEST_MAX_BYTES + 1)
        except OSError as exc:
            raise ConfigError(f"{file}: unreadable {what}: {exc}") from None
    if len(data) > MANIFEST_MAX_BYTES:
        raise ConfigError(f"{file}: larger than the {size_text(MANIFEST_MAX_BYTES)} limit")
    try:
        value = json.loads(data.decode("utf-8"))
    except RecursionError:
        raise ConfigError(f"{file}: JSON nested deeper than {JSON_MAX_DEPTH} levels") from None
    except ValueError as exc:  # not UTF-8, not JSON, or an integer of over 4,300 digits
        raise ConfigError(f"{file}: unreadable {what}: {exc}") from None
    if _depth_over(value, JSON_MAX_DEPTH):
        raise ConfigError(f"{file}: JSON nested deeper than {JSON_MAX_DEPTH} levels")
    return value


def _depth_over(value: Any, limit: int) -> bool:
    """Whether ``value`` nests lists/objects more than ``limit`` deep (iterative: no recursion)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children = list(item.values())
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


def read_npz(file: Path) -> dict[str, npt.NDArray[Any]]:
    """Every array in the ``.npz`` ``file`` by name (without ``.npy``), within the limits above."""
    with open_regular(file) as fh:
        try:
            size = _directory_size(fh)
            if size is not None and size > NPZ_MAX_DIRECTORY:
                raise ConfigError(
                    f"{file}: zip central directory of {size:,} bytes, over the "
                    f"{size_text(NPZ_MAX_DIRECTORY)} limit"
                )
            with zipfile.ZipFile(fh) as zf:
                members = _members(zf, file)
                return {name: _read_member(zf, info, file) for name, info in members}
        except zipfile.BadZipFile as exc:
            raise ConfigError(f"{file}: not a zip of .npy arrays (an .npz): {exc}") from None
        except _READ_ERRORS as exc:
            raise ConfigError(f"{file}: unreadable router arrays: {exc}") from None


def _directory_size(fh: IO[bytes]) -> int | None:
    """The central directory size the zip's end record states: what ``zipfile`` will read
    and parse in one go (found as ``zipfile`` finds it; ``None`` if there is no end record)."""
    end = fh.seek(0, os.SEEK_END)
    start = max(end - (22 + 0xFFFF + 76), 0)  # end record + longest comment + zip64 records
    fh.seek(start)
    tail = fh.read()
    last = len(tail) - 22
    at = last if tail[last : last + 4] == _EOCD and tail[-2:] == b"\0\0" else tail.rfind(_EOCD)
    if at < 0 or at + 22 > len(tail):
        return None
    size: int = struct.unpack_from("<I", tail, at + 12)[0]
    z64 = at - 76  # a zip64 end record (56 bytes) and its locator (20) precede the end record
    if z64 >= 0 and tail[z64 : z64 + 4] == _EOCD64 and tail[at - 20 : at - 16] == _EOCD64_LOCATOR:
        size = struct.unpack_from("<Q", tail, z64 + 40)[0]
    return size


def _members(zf: zipfile.ZipFile, file: Path) -> list[tuple[str, zipfile.ZipInfo]]:
    infos = zf.infolist()
    if len(infos) > NPZ_MAX_MEMBERS:
        raise ConfigError(f"{file}: {len(infos):,} members, over the limit of {NPZ_MAX_MEMBERS}")
    total = sum(info.file_size for info in infos)
    if total > NPZ_MAX_BYTES:
        raise ConfigError(
            f"{file}: members total {total:,} bytes uncompressed, over the "
            f"{size_text(NPZ_MAX_BYTES)} limit"
        )
    out: dict[str, zipfile.ZipInfo] = {}
    for info in infos:
        name = info.filename.removesuffix(".npy")
        if info.is_dir() or name == info.filename:
            raise ConfigError(f"{file}: member {info.filename!r} is not a .npy array")
        if name in out:
            raise ConfigError(f"{file}: member {info.filename!r} appears twice")
        if info.compress_type not in _COMPRESSION or info.flag_bits & 0x1:
            raise ConfigError(
                f"{file}: member {info.filename!r} is encrypted or uses compression method "
                f"{info.compress_type}; expected stored or deflated (as numpy writes)"
            )
        out[name] = info
    return list(out.items())


def _read_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, file: Path) -> npt.NDArray[Any]:
    name = info.filename.removesuffix(".npy")
    try:
        with zf.open(info) as fh:
            _check_header(fh, info.file_size)
        with zf.open(info) as fh:
            return np.asarray(np.lib.format.read_array(fh, allow_pickle=False))
    except _READ_ERRORS as exc:
        raise ConfigError(f"{file}: unreadable router arrays: array {name!r}: {exc}") from None


def _check_header(fh: IO[bytes], member_size: int) -> None:
    """Refuse a ``.npy`` header that declares objects or more bytes than the member holds."""
    version = np.lib.format.read_magic(fh)
    if version == (1, 0):
        shape, _, dtype = np.lib.format.read_array_header_1_0(fh)
    elif version == (2, 0):
        shape, _, dtype = np.lib.format.read_array_header_2_0(fh)
    else:
        raise ValueError(f".npy format version {version} is not supported")
    if dtype.hasobject:
        raise ValueError("it holds Python objects, which would need pickle (refused)")
    declared = math.prod(shape) * dtype.itemsize
    holds = member_size - fh.tell()
    if declared > holds:
        raise ValueError(
            f"its header declares shape {tuple(shape)} of {dtype} ({declared:,} bytes) "
            f"but the member holds {holds:,} bytes"
        )


def versions() -> dict[str, str]:
    """What wrote an artifact (recorded in its manifest): polyroute, numpy and Python."""
    try:
        ours = metadata.version("polyroute")
    except metadata.PackageNotFoundError:
        ours = "unknown"
    return {"polyroute": ours, "numpy": np.__version__, "python": platform.python_version()}


def write_model_dir(
    out: str | os.PathLike[str],
    manifest: dict[str, Any],
    arrays: dict[str, npt.NDArray[Any]],
    names: tuple[str, str] = ("manifest.json", "arrays.npz"),
) -> Path:
    """Write a model directory (created): ``manifest`` as JSON (with :func:`versions`) and
    ``arrays`` as one compressed ``.npz`` that loads without pickle; returns its path."""
    path = Path(out)
    path.mkdir(parents=True, exist_ok=True)
    with open(path / names[1], "wb") as fh:
        np.savez_compressed(fh, allow_pickle=False, **arrays)
    text = json.dumps({**manifest, "versions": versions()}, indent=2, sort_keys=True)
    (path / names[0]).write_text(text + "\n")
    return path
