"""``polyroute keys``: make gateway API keys and the digests the config stores.

    polyroute keys new --name team-a     # prints a fresh key (once) and its config entry
    polyroute keys hash < key.txt        # the digest of an existing key, read from stdin

Keys are read from stdin, never from argv, so they stay out of shell history
and ``ps``.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from polyroute.errors import ConfigError


def _entry(name: str, digest: str) -> str:
    from pydantic import ValidationError

    from polyroute.config import ApiKeyConfig

    try:
        ApiKeyConfig(name=name, sha256=digest)
    except ValidationError:
        raise ConfigError(
            f"keys: --name {name!r}: expected 1-64 letters, digits or _.:@-"
        ) from None
    return f"server:\n  api_keys:\n    - name: {json.dumps(name)}\n      sha256: {digest}"


def _cmd_new(args: argparse.Namespace) -> int:
    from polyroute.server.security import hash_key, new_key

    key = new_key()
    print(f"key (shown once; give it to the client):\n  {key}\n")
    print(f"config entry (only the digest is stored):\n{_entry(args.name, hash_key(key))}")
    return 0


def _cmd_hash(args: argparse.Namespace) -> int:
    from polyroute.server.security import hash_key

    key = sys.stdin.readline().strip()
    if not key:
        raise ConfigError("keys hash: expected the key on stdin, got nothing")
    print(_entry(args.name, hash_key(key)))
    return 0


def add_keys_parser(sub: Any) -> None:
    keys = sub.add_parser("keys", help="make gateway API keys (stored hashed in the config)")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True)
    new = keys_sub.add_parser("new", help="generate a key and print its config entry")
    new.add_argument("--name", default="client", help="the key's name in traces and logs")
    new.set_defaults(func=_cmd_new)
    hashed = keys_sub.add_parser("hash", help="print the config entry for a key read from stdin")
    hashed.add_argument("--name", default="client", help="the key's name in the printed entry")
    hashed.set_defaults(func=_cmd_hash)
