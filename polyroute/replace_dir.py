"""Replace a directory whole, or not at all: build beside it, then swap it in.

Used by writers whose output directory may hold an earlier build the user wants kept
until the new one is complete (``train-signal jailbreak --stages``).  The new content is
written into a hidden sibling (:func:`staging_beside`: same file system, so the swap is
two renames); :func:`swap_in` moves the earlier directory aside, renames the new one into
place (putting the earlier one back if that fails) and removes the earlier one.  A build
that fails before the swap leaves the earlier directory as it was.  Problems are
ConfigErrors naming the flag that gave the directory.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import shutil
from pathlib import Path

from polyroute.errors import ConfigError

_LOG = logging.getLogger("polyroute")


def staging_beside(root: Path, flag: str, what: str) -> Path:
    """A new hidden directory beside ``root`` to build ``what`` in, with ``root``'s mode
    and group when ``root`` exists.  Leftovers of a build killed midway go."""
    for stale in (
        *root.parent.glob(f".{root.name}.new-*"),
        *root.parent.glob(f".{root.name}.old-*"),
    ):
        shutil.rmtree(stale, ignore_errors=True)
    staging = _beside(root, "new")
    try:
        root.parent.mkdir(parents=True, exist_ok=True)
        staging.mkdir()
        if root.is_dir():  # the swapped-in directory keeps the earlier one's mode and group
            shutil.copymode(root, staging)
            with contextlib.suppress(OSError):
                os.chown(staging, -1, root.stat().st_gid)
    except OSError as exc:
        raise ConfigError(
            f"{flag}: cannot create a directory beside {root} ({exc.strerror}): {what} is "
            f"built there and swapped in; give a {flag} whose parent directory is writable"
        ) from None
    return staging


def swap_in(staging: Path, root: Path, flag: str, what: str) -> None:
    """Put the complete build at ``staging`` in place of ``root`` (an earlier directory
    goes whole, and only now)."""
    old = _beside(root, "old")
    try:
        if root.exists():
            root.rename(old)
        try:
            staging.rename(root)
        except OSError:
            if old.exists():
                old.rename(root)  # put the earlier one back
            raise
    except OSError as exc:
        raise ConfigError(f"{flag}: cannot put {what} at {root} ({exc.strerror})") from None
    if old.exists():
        shutil.rmtree(old, ignore_errors=True)
        if old.exists():
            _LOG.warning("could not remove the earlier %s at %s; remove it by hand", what, old)


def _beside(root: Path, what: str) -> Path:
    """A hidden, unused name next to ``root``."""
    return root.with_name(f".{root.name}.{what}-{secrets.token_hex(6)}")
