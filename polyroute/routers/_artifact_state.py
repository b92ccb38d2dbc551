"""A saved router state as it loads: JSON metadata and arrays, checked as the router takes them.

A router's ``_set_state`` takes each array with its expected shape written in
named sizes, e.g. ``state.array("w1", ("features", "hidden"))``.  A name is
bound the first time it is seen (to a size of at least 1) and must match
everywhere after.  The loader binds ``models`` (the manifest's model count) and
feature routers bind ``features`` (their encoder's width plus the text
features) before the arrays that use them.  Float arrays must hold finite
numbers; string arrays must be numpy unicode arrays.  The metadata is read with
:meth:`SavedState.integer`, :meth:`~SavedState.text` and :meth:`~SavedState.objects`.

Every mismatch is a :class:`~polyroute.errors.ConfigError` naming the file, the
array or field, and what was expected (with the sizes already known); after
loading, :meth:`SavedState.unused` lists the arrays no part of the router took.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, NoReturn

import numpy as np
import numpy.typing as npt

from polyroute.errors import ConfigError

Shape = tuple[int | str, ...]
_KINDS = {"f": "float", "U": "string"}


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


@dataclass
class _Artifact:
    """What every view of one loading artifact shares."""

    arrays: dict[str, npt.NDArray[Any]]
    manifest_file: str
    arrays_file: str
    router: str
    taken: set[str] = field(default_factory=set)


class SavedState:
    """A view of the state being loaded: metadata at ``meta_path``, arrays under a prefix."""

    def __init__(
        self,
        arrays: dict[str, npt.NDArray[Any]],
        meta: dict[str, Any],
        *,
        manifest_file: str,
        arrays_file: str,
        router: str,
    ) -> None:
        self._artifact = _Artifact(arrays, manifest_file, arrays_file, router)
        self.meta = meta
        self._meta_path = "state"
        self._prefix = ""
        self._dims: dict[str, int] = {}
        self._notes: dict[str, str] = {}

    # ----------------------------------------------------------------- sizes and views

    def bind(self, name: str, size: int, note: str = "") -> None:
        """Fix the named size ``name`` (``note`` says where it comes from, for messages)."""
        self._dims[name] = size
        if note:
            self._notes[name] = note

    @property
    def arrays_file(self) -> str:
        """The arrays file being loaded (for messages)."""
        return self._artifact.arrays_file

    def dim(self, name: str) -> int:
        return self._dims[name]

    def sub(self, prefix: str, meta: dict[str, Any] | None = None, path: str = "") -> SavedState:
        """The arrays under ``prefix`` (and ``meta`` at ``path``); sizes bound so far carry over."""
        child = copy.copy(self)
        child._prefix = self._prefix + prefix
        child.meta = self.meta if meta is None else meta
        child._meta_path = path or self._meta_path
        child._dims = dict(self._dims)
        child._notes = dict(self._notes)
        return child

    def unused(self) -> list[str]:
        """Arrays of the artifact that no part of the router took."""
        return sorted(set(self._artifact.arrays) - self._artifact.taken)

    def fail_unused(self) -> None:
        extra = self.unused()
        if extra:
            self._fail_arrays(
                f"unexpected array {extra[0]!r}"
                + (f" (and {len(extra) - 1} more)" if len(extra) > 1 else "")
                + f"; router {self._artifact.router!r} does not use it"
            )

    # ----------------------------------------------------------------- arrays

    def shape(self, name: str) -> tuple[int, ...] | None:
        """The shape of array ``name`` if it exists (it is not taken)."""
        arr = self._artifact.arrays.get(self._prefix + name)
        return None if arr is None else tuple(arr.shape)

    def array(
        self, name: str, shape: Shape, dtype: type[np.generic] = np.float64
    ) -> npt.NDArray[Any]:
        """Array ``name`` checked against ``shape`` and ``dtype``'s kind, converted to ``dtype``."""
        full = self._prefix + name
        self._artifact.taken.add(full)
        arr = self._artifact.arrays.get(full)
        want = np.dtype(dtype)
        if arr is None:
            self._fail_arrays(f"array {full!r} is missing (expected shape {self._show(shape)})")
        if arr.dtype.kind != want.kind:
            kind = _KINDS.get(want.kind, str(want))
            self._fail_arrays(f"array {full!r} has dtype {arr.dtype}; expected a {kind} array")
        self._match(full, tuple(arr.shape), shape)
        if want.kind == "f" and not np.isfinite(arr).all():
            self._fail_arrays(f"array {full!r} holds NaN or infinity; expected finite numbers")
        return np.asarray(arr, dtype=want)

    def _match(self, full: str, got: tuple[int, ...], shape: Shape) -> None:
        new: dict[str, int] = {}
        ok = len(got) == len(shape)
        for size, dim in zip(got, shape, strict=False):
            expected = dim if isinstance(dim, int) else self._dims.get(dim, new.get(dim))
            if expected is None and size >= 1:
                new[str(dim)] = size
            elif size != expected:
                ok = False
        if not ok:
            notes = [self._notes[d] for d in shape if isinstance(d, str) and d in self._notes]
            self._fail_arrays(
                f"array {full!r} has shape {got}; expected shape {self._show(shape)}"
                + (" (named sizes are at least 1)" if 0 in got else "")
                + "".join(f"; {note}" for note in dict.fromkeys(notes))
            )
        self._dims.update(new)

    def _show(self, shape: Shape) -> str:
        parts = [
            str(d) if isinstance(d, int) else f"{d}={self._dims[d]}" if d in self._dims else d
            for d in shape
        ]
        return "(" + ", ".join(parts) + ")"

    # ----------------------------------------------------------------- metadata

    def integer(self, key: str, low: int, high: int | None = None, what: str = "") -> int:
        """``meta[key]``: an integer ``>= low`` (and ``< high``)."""
        value = self.meta.get(key)
        span = f">= {low}" if high is None else f"in [{low}, {high})"
        if not isinstance(value, int) or isinstance(value, bool):
            self._fail_meta(key, f"an integer {span}{what}", value)
        if value < low or (high is not None and value >= high):
            self._fail_meta(key, f"an integer {span}{what}", value)
        return value

    def text(self, key: str, choices: Sequence[str]) -> str:
        """``meta[key]``: one of ``choices``."""
        value = self.meta.get(key)
        if not isinstance(value, str) or value not in choices:
            self._fail_meta(key, "one of " + ", ".join(map(repr, choices)), value)
        return value

    def objects(self, key: str, count: int) -> list[dict[str, Any]]:
        """``meta[key]``: a list of exactly ``count`` JSON objects."""
        value = self.meta.get(key)
        if not isinstance(value, list) or len(value) != count:
            self._fail_meta(key, f"a list of {count} objects", value)
        if not all(isinstance(item, dict) for item in value):
            self._fail_meta(key, f"a list of {count} objects", value)
        return value

    # ----------------------------------------------------------------- failures

    def _fail_arrays(self, detail: str) -> NoReturn:
        a = self._artifact
        raise ConfigError(f"{a.arrays_file}: artifact does not match router {a.router!r}: {detail}")

    def _fail_meta(self, key: str, expected: str, value: Any) -> NoReturn:
        a = self._artifact
        raise ConfigError(
            f"{a.manifest_file}: artifact does not match router {a.router!r}: "
            f"{self._meta_path}.{key} must be {expected}, got {_short(value)}"
        )
