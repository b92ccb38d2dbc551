"""Reading a YAML config file with bounded cost: size, nodes, alias expansion and depth.

``yaml.safe_load`` shares an aliased node's object, so a "billion laughs" document
(``b: &b [*a,*a,...]`` nine levels deep, a few hundred bytes) loads quickly and small;
whatever walks the tree afterwards (``${VAR}`` substitution, validation) expands it
and takes minutes and gigabytes.  Here the node graph is composed first, with limits
on the file size, the number of distinct nodes and the nesting depth, then its size
*with every alias expanded* is counted (memoised per node, so in linear time) and
refused past a budget, all before any Python object is built.  Every failure is a
one-line ``ConfigError`` naming the file.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from polyroute.errors import ConfigError

# a real config is a few KiB and a few hundred nodes, ten levels deep at most
MAX_CONFIG_BYTES = 4 * 1024 * 1024  # pure-Python YAML reads ~1 MiB/s: bounded time too
MAX_NODES = 100_000  # nodes counted with every alias expanded (so also the distinct ones)
MAX_DEPTH = 100  # nested mappings/sequences, aliases expanded
_FAR = " (the limit is far above any real config)"


class _Refused(Exception):
    """The document is over a limit; the message says which."""


class _BoundedLoader(yaml.SafeLoader):
    """A SafeLoader that stops composing past ``MAX_NODES`` distinct nodes or ``MAX_DEPTH``
    levels (before the composer's recursion can run out of stack)."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self._nodes = 0
        self._depth = 0

    def _count(self) -> None:
        self._nodes += 1
        if self._nodes > MAX_NODES:
            raise _Refused(f"it has more than {MAX_NODES:,} YAML nodes{_FAR}")

    def compose_scalar_node(self, anchor: Any) -> yaml.ScalarNode:
        self._count()
        return super().compose_scalar_node(anchor)

    def compose_sequence_node(self, anchor: Any) -> yaml.SequenceNode:
        with self._nested():
            return super().compose_sequence_node(anchor)

    def compose_mapping_node(self, anchor: Any) -> yaml.MappingNode:
        with self._nested():
            return super().compose_mapping_node(anchor)

    @contextmanager
    def _nested(self) -> Iterator[None]:
        """One more node, one level deeper while its children are composed."""
        self._count()
        self._depth += 1
        if self._depth > MAX_DEPTH:
            raise _Refused(f"it nests more than {MAX_DEPTH} levels deep{_FAR}")
        try:
            yield
        finally:
            self._depth -= 1


def _children(node: Node) -> list[Node]:
    if isinstance(node, SequenceNode):
        return list(node.value)
    if isinstance(node, MappingNode):
        return [item for pair in node.value for item in pair]
    return []


def _check_expansion(root: Node) -> None:
    """Raise ``_Refused`` when ``root`` with its aliases expanded has more than ``MAX_NODES``
    nodes or ``MAX_DEPTH`` levels, or contains itself.  Iterative and memoised per node:
    linear in the composed graph however much its aliases would expand."""
    measured: dict[int, tuple[int, int]] = {}  # id(node) -> (expanded nodes, depth)
    open_: set[int] = set()  # entered, not finished: meeting one again is a cycle
    stack: list[tuple[Node, bool]] = [(root, False)]
    while stack:
        node, finished = stack.pop()
        key = id(node)
        if finished:
            measured[key] = _measure(node, measured)
            open_.discard(key)
        elif key in open_:
            raise _Refused("an alias refers to a node that contains it (a recursive structure)")
        elif key not in measured:
            open_.add(key)
            stack.append((node, True))
            stack.extend((k, False) for k in _children(node))


def _measure(node: Node, measured: dict[int, tuple[int, int]]) -> tuple[int, int]:
    """(expanded nodes, depth) of ``node`` from its children's, already measured."""
    kids = [measured[id(k)] for k in _children(node)]
    size = 1 + sum(n for n, _ in kids)
    depth = 0 if isinstance(node, ScalarNode) else 1 + max((d for _, d in kids), default=0)
    if size > MAX_NODES:
        raise _Refused(f"its aliases expand to more than {MAX_NODES:,} nodes{_FAR}")
    if depth > MAX_DEPTH:
        raise _Refused(f"its aliases expand to more than {MAX_DEPTH} levels of nesting{_FAR}")
    return size, depth


def _read(file: Path) -> str:
    try:
        with file.open("rb") as fh:
            data = fh.read(MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"{file}: cannot read config ({exc.strerror})") from None
    if len(data) > MAX_CONFIG_BYTES:
        limit = MAX_CONFIG_BYTES // (1024 * 1024)
        raise ConfigError(f"{file}: config file is over the {limit} MiB limit for a config")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{file}: config is not UTF-8 text (byte {exc.start}: {exc.reason})"
        ) from None


def _yaml_error(file: Path, exc: yaml.YAMLError) -> ConfigError:
    mark = getattr(exc, "problem_mark", None)
    where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
    problem = " ".join(str(getattr(exc, "problem", None) or exc).split())
    return ConfigError(f"{file}:{where} invalid YAML ({problem})")


def load_yaml_file(file: Path) -> Any:
    """Read and parse a YAML config; ``ConfigError`` (one line, naming ``file``) on any
    problem: unreadable, too large, not UTF-8, invalid YAML, or over a limit above."""
    text = _read(file)
    loader: _BoundedLoader | None = None
    try:
        loader = _BoundedLoader(text)  # checks the characters: may raise a YAMLError
        node = loader.get_single_node()
        if node is None:
            return None
        _check_expansion(node)
        return loader.construct_document(node)
    except yaml.YAMLError as exc:
        raise _yaml_error(file, exc) from None
    except _Refused as exc:
        raise ConfigError(f"{file}: refused: {exc}") from None
    except RecursionError:
        raise ConfigError(f"{file}: invalid YAML (nested too deeply)") from None
    except (ValueError, OverflowError) as exc:  # e.g. a date like 2001-02-30, a 5000-digit int
        reason = str(exc).split(";")[0]  # not Python's advice on sys.set_int_max_str_digits
        raise ConfigError(f"{file}: invalid YAML value ({reason})") from None
    finally:
        if loader is not None:
            loader.dispose()
