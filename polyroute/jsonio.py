"""Request bodies to JSON bytes for an upstream, with integers of any size kept exact.

orjson writes integers of at most 64 bits (``-2**63`` to ``2**64 - 1``) and raises
``orjson.JSONEncodeError`` for larger ones; a client's ``"seed": 123456789012345678901``
must still reach the upstream as written.  ``dumps_body`` takes orjson's fast path and
falls back to the stdlib only when orjson refused an integer (rare: it costs one walk
of the body, on the failure path only).
"""

from __future__ import annotations

import json
from typing import Any

import orjson

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
