"""The low-bandwidth digest store: what each row looked like (masked) when it was last
delivered, so an unchanged row is counted as `skipped` instead of being sent again.

Rows are keyed by a *scope* (source, tables and columns of the query) and their key columns'
values; the store keeps a SHA-256 of each, never a value. A digest becomes "sent" only once
its chunk was delivered (relay: the cloud answered 200; tunnel: the signed trailer went out):
until then it is *staged* under a batch id and can be discarded, so a lost or refused chunk
never makes a row look delivered.
"""

from __future__ import annotations

import hashlib
import sqlite3
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path

_SCHEMA = """
CREATE TABLE IF NOT EXISTS sent (k BLOB PRIMARY KEY, digest BLOB NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS staged (
    batch TEXT NOT NULL, k BLOB NOT NULL, digest BLOB NOT NULL, PRIMARY KEY (batch, k)
) WITHOUT ROWID;
"""
# Lookups go in groups: SQLite caps the number of bound parameters per statement.
_LOOKUP_GROUP = 500

Entry = tuple[bytes, bytes]  # (row key, digest)


def row_key(scope: str, key: bytes) -> bytes:
    """The stored key of a row: SHA-256 of its scope and its key columns' serialised values."""
    return hashlib.sha256(scope.encode() + b"\0" + key).digest()


class DigestStore:
    """A small SQLite database in the data directory; safe to share between threads."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)

    def sent(self, keys: Sequence[bytes]) -> dict[bytes, bytes]:
        """The delivered digests of those of `keys` the store knows."""
        found: dict[bytes, bytes] = {}
        with self._lock:
            for start in range(0, len(keys), _LOOKUP_GROUP):
                group = keys[start : start + _LOOKUP_GROUP]
                marks = ",".join("?" * len(group))
                rows = self._db.execute(
                    f"SELECT k, digest FROM sent WHERE k IN ({marks})",
                    group,
                )
                found.update(rows.fetchall())
        return found

    def stage(self, batch: str, entries: Iterable[Entry]) -> None:
        """Remember digests of rows about to be delivered under `batch`."""
        with self._lock:
            self._db.execute("BEGIN")
            try:
                self._db.executemany(
                    "INSERT OR REPLACE INTO staged (batch, k, digest) VALUES (?, ?, ?)",
                    ((batch, k, d) for k, d in entries),
                )
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def commit(self, batch: str) -> None:
        """The batch was delivered: its digests become the rows' last sent state."""
        with self._lock:
            self._db.execute("BEGIN")
            try:
                self._db.execute(
                    "INSERT OR REPLACE INTO sent (k, digest) "
                    "SELECT k, digest FROM staged WHERE batch = ?",
                    (batch,),
                )
                self._db.execute("DELETE FROM staged WHERE batch = ?", (batch,))
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def discard(self, batch: str) -> None:
        """The batch was not delivered: forget its staged digests."""
        with self._lock:
            self._db.execute("DELETE FROM staged WHERE batch = ?", (batch,))

    def discard_prefix(self, prefix: str) -> None:
        """Forget every staged batch whose id starts with `prefix` (a dropped relay job)."""
        escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        with self._lock:
            self._db.execute("DELETE FROM staged WHERE batch LIKE ? ESCAPE '\\'", (escaped + "%",))

    def close(self) -> None:
        with self._lock:
            self._db.close()
