"""JSON in and out: request bodies to JSON bytes for an upstream (integers of any size
kept exact), and JSON-lines files read row by row with errors naming the line.

orjson writes integers of at most 64 bits (``-2**63`` to ``2**64 - 1``) and raises
``orjson.JSONEncodeError`` for larger ones; a client's ``"seed": 123456789012345678901``
must still reach the upstream as written.  ``dumps_body`` takes orjson's fast path and
falls back to the stdlib only when orjson refused an integer (rare: it costs one walk
of the body, on the failure path only).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

from polyroute.errors import DatasetError

_MIN_INT = -(2**63)
_MAX_INT = 2**64 - 1


def dumps_body(obj: Any) -> bytes:
    """``obj`` as compact UTF-8 JSON: orjson's bytes, or the stdlib's when it holds an
    integer beyond 64 bits.  Non-finite floats are refused on that path (``ValueError``)
    rather than written as the invalid ``NaN``/``Infinity``."""
    try:
        return orjson.dumps(obj)
    except orjson.JSONEncodeError:
        if not _has_big_int(obj):
            raise
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


def _has_big_int(value: Any) -> bool:
    """True when ``value`` holds an int outside orjson's 64-bit range (iterative walk)."""
    stack = [value]
    while stack:
        node = stack.pop()
        if isinstance(node, int):
            if not _MIN_INT <= node <= _MAX_INT:
                return True
        elif isinstance(node, dict):
            stack.extend(node.values())
        elif isinstance(node, list | tuple):
            stack.extend(node)
    return False


def json_lines(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """``(line number, object)`` for every non-blank line of a JSON-lines file; a line
    that is not a JSON object, or a file that cannot be read, is a DatasetError naming
    the file and the line (the one reader of datasets, prompt files, route inputs and
    signal training data)."""
    try:
        with path.open(encoding="utf-8") as fh:
            for lineno, line in enumerate(fh, start=1):
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise DatasetError(
                        f"{path}:{lineno}: not a JSON object (invalid JSON: {exc.msg}); "
                        "expected one JSON object per line"
                    ) from None
                if not isinstance(obj, dict):
                    raise DatasetError(
                        f"{path}:{lineno}: expected a JSON object, got {type(obj).__name__}"
                    )
                yield lineno, obj
    except OSError as exc:
        raise DatasetError(f"{path}: cannot read ({exc.strerror})") from None
    except UnicodeDecodeError:
        raise DatasetError(f"{path}: not UTF-8 text; expected JSONL") from None
