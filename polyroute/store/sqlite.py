"""SQLite store: shared state that survives a restart, on one machine, with zero setup.

One table ``kv(key, value, expires)`` in the file ``path`` (WAL journal, so readers do
not block the writer); every call runs in a worker thread on one connection, under a
lock.  Expired rows are ignored on read and swept on write, a few at a time.  The file
is opened (and created) on first use, so building an engine (``polyroute config
validate``) writes nothing; a path that cannot be one (no such directory, a directory,
a directory it may not write in) is a ConfigError at once.  Use it for stored
conversations (``/v1/responses``) or the semantic cache's store when the gateway
restarts; use Redis when several replicas share state.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path

from polyroute.errors import ConfigError

_SCHEMA = "CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value BLOB, expires REAL)"
_LIVE_ROW = "SELECT value, expires FROM kv WHERE key = ? AND (expires IS NULL OR expires > ?)"
_SWEEP = "DELETE FROM kv WHERE rowid IN (SELECT rowid FROM kv WHERE expires <= ? LIMIT 64)"


class SqliteStore:
    def __init__(
        self, path: str = "polyroute-store.sqlite3", clock: Callable[[], float] = time.time
    ) -> None:
        self.path = str(Path(path))
        self._clock = clock
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        self._closed = False
        problem = _unusable(Path(self.path))
        if problem:
            raise ConfigError(f"store.path {self.path}: cannot open an SQLite file ({problem})")

    @property
    def _db(self) -> sqlite3.Connection:
        """The connection, opened on first use (the caller holds the lock)."""
        if self._conn is None:
            if self._closed:
                raise sqlite3.ProgrammingError("Cannot operate on a closed database.")
            conn = None
            try:
                conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute(_SCHEMA)
            except sqlite3.Error as exc:  # a store that is down, as far as callers know
                if conn is not None:
                    conn.close()
                raise sqlite3.OperationalError(
                    f"store.path {self.path}: cannot open an SQLite file ({exc})"
                ) from None
            self._conn = conn
        return self._conn

    def _get(self, key: str) -> bytes | None:
        with self._lock:
            row = self._db.execute(
                "SELECT value FROM kv WHERE key = ? AND (expires IS NULL OR expires > ?)",
                (key, self._clock()),
            ).fetchone()
        return None if row is None else bytes(row[0])

    def _set(self, key: str, value: bytes, ttl_s: float | None) -> None:
        now = self._clock()
        expires = None if ttl_s is None else now + ttl_s
        with self._lock:
            self._db.execute(
                "INSERT INTO kv (key, value, expires) VALUES (?, ?, ?) "
                "ON CONFLICT(key) DO UPDATE SET value = excluded.value, expires = excluded.expires",
                (key, value, expires),
            )
            self._db.execute(_SWEEP, (now,))

    def _incr(self, key: str, amount: float) -> float:
        now = self._clock()
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                row = self._db.execute(_LIVE_ROW, (key, now)).fetchone()
                total = (float(bytes(row[0])) if row is not None else 0.0) + amount
                expires = row[1] if row is not None else None
                self._db.execute(
                    "INSERT OR REPLACE INTO kv (key, value, expires) VALUES (?, ?, ?)",
                    (key, repr(total).encode(), expires),
                )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return total

    async def get(self, key: str) -> bytes | None:
        return await asyncio.to_thread(self._get, key)

    async def set(self, key: str, value: bytes, ttl_s: float | None = None) -> None:
        await asyncio.to_thread(self._set, key, value, ttl_s)

    async def incr(self, key: str, amount: float = 1.0) -> float:
        return await asyncio.to_thread(self._incr, key, amount)

    async def aclose(self) -> None:
        with self._lock:
            self._closed = True
            if self._conn is not None:
                self._conn.close()
                self._conn = None


def _unusable(path: Path) -> str:
    """Why ``path`` cannot be an SQLite file, checked without creating it ("" if it can)."""
    folder = path.parent
    if not folder.is_dir():
        return f"no directory {folder}"
    if path.is_dir():
        return "it is a directory"
    if not path.exists() and not os.access(folder, os.W_OK | os.X_OK):
        return f"the directory {folder} is not writable"
    return ""
