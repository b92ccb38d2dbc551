"""Name registries: config and CLI names -> classes, one registry per extension point.

Entries are ``"module:Attribute"`` strings, imported on first use, so heavy
libraries (torch, scikit-learn, lingua) load only when a config asks for them.
Adding an algorithm is one new file plus one line in its package's table.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any, Generic, TypeVar

from polyroute.errors import ConfigError

T = TypeVar("T")


class Registry(Generic[T]):
    def __init__(self, kind: str, entries: Mapping[str, str]) -> None:
        self.kind = kind
        self._entries = dict(entries)
        self._loaded: dict[str, T] = {}

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def register(self, name: str, target: str) -> None:
        """Add ``name`` -> ``"module:Attribute"`` (for third-party extensions)."""
        self._entries[name] = target
        self._loaded.pop(name, None)

    def get(self, name: str, where: str = "") -> T:
        if name in self._loaded:
            return self._loaded[name]
        target = self._entries.get(name)
        if target is None:
            at = f"{where}: " if where else ""
            raise ConfigError(
                f"{at}unknown {self.kind} {name!r}; expected one of: {', '.join(self.names())}"
            )
        module, _, attr = target.partition(":")
        obj: Any = getattr(importlib.import_module(module), attr)
        self._loaded[name] = obj
        return obj  # type: ignore[no-any-return]
