"""Hostile YAML config documents, shared by the unit and the process tests."""

from __future__ import annotations

import itertools

HEAD = "models:\n  m: {base_url: 'http://127.0.0.1:9/v1'}\nsignals:\n  x:\n"


def alias_bomb(levels: int, fan: int = 9) -> str:
    """'Billion laughs': each level is a list of ``fan`` aliases of the level before, so the
    document expands to ``fan ** levels`` leaves (8 levels: 43 million, 9: 387 million)."""
    names = "abcdefghijklmnopqrstuvwxyz"
    lines = [f"    a: &a [{','.join(['lol'] * fan)}]"]
    for prev, name in itertools.pairwise(names[:levels]):
        lines.append(f"    {name}: &{name} [{','.join(['*' + prev] * fan)}]")
    return HEAD + "\n".join(lines) + "\n"


DEEP = "[" * 100_000  # the YAML composer recurses per level
RECURSIVE = HEAD + "    loop: &loop [1, *loop]\n"  # a list that contains itself
