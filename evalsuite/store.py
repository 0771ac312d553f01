"""The persistent cache: one SQLite file per cache folder, shared safely by any number of processes.

It holds three tables:

* ``answers``: a backend's answer to one request, keyed by the model's identity (weights hash, dtype,
  quantization, backend and library versions; see ``models.identity``) and a hash of the exact request,
* ``models``: what a model looked like when it was loaded (``ModelInfo``), so a fully cached rerun can
  write its manifest without loading the weights,
* ``digests``: sha256 digests of weight files by path, size and modification time, so a model's identity
  is known without re-reading gigabytes on every run (git's index does the same for its object ids).

Why SQLite: it is in the standard library, one file is easy to copy or delete, and in WAL mode readers
never block and a writer's transaction is atomic on disk, so a process killed at any moment leaves
every committed answer readable and nothing half written. Writers wait for each other (busy timeout)
instead of failing, which is what several evaluation processes on one cache folder need.
"""

from __future__ import annotations

import hashlib
import sqlite3
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

from evalsuite.errors import ConfigError

FILENAME = "evalsuite-cache.sqlite"
SCHEMA_VERSION = 1
TIMEOUT = 120.0  # seconds a process waits for another's write lock before giving up
_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS answers (model TEXT NOT NULL, request BLOB NOT NULL, value TEXT NOT NULL,"
    " PRIMARY KEY (model, request)) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS models (identity TEXT PRIMARY KEY, info TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS digests (path TEXT PRIMARY KEY, size INTEGER NOT NULL,"
    " mtime_ns INTEGER NOT NULL, digest TEXT NOT NULL)",
)
_BATCH = 500  # SQLite's default limit on host parameters is 999 (32766 since 3.32); stay well below


def request_hash(key: str) -> bytes:
    """16 bytes of sha256: collisions are out of reach for any realistic number of requests."""
    return hashlib.sha256(key.encode()).digest()[:16]


class Store:
    """A connection to ``<folder>/evalsuite-cache.sqlite``, created on first use."""

    def __init__(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.path = folder / FILENAME
        self._db = sqlite3.connect(self.path, timeout=TIMEOUT, isolation_level=None)
        try:
            self._enter_wal_mode()
            self._db.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: durable across process kills
            version = self._db.execute("PRAGMA user_version").fetchone()[0]
            if version not in (0, SCHEMA_VERSION):
                raise ConfigError(
                    f"cache {self.path} was written by another evalsuite version (schema {version}); "
                    "delete it or choose another --cache-dir"
                )
            if version == 0:
                with self._transaction():
                    for statement in _SCHEMA:
                        self._db.execute(statement)
                    self._db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        except sqlite3.DatabaseError as error:
            self._db.close()
            raise ConfigError(
                f"cache {self.path} is not usable ({error}); delete it or choose another --cache-dir"
            ) from None

    def _enter_wal_mode(self) -> None:
        """Switching a new file to WAL needs its write lock, and SQLite does not wait for that lock
        (waiting could deadlock), so a process opening the file while another creates it retries."""
        deadline = time.monotonic() + TIMEOUT
        while True:
            try:
                self._db.execute("PRAGMA journal_mode=WAL")
                return
            except sqlite3.OperationalError as error:
                if "locked" not in str(error) or time.monotonic() > deadline:
                    raise
                time.sleep(0.01)

    def _transaction(self) -> _Transaction:
        return _Transaction(self._db)

    # -- answers ----------------------------------------------------------------------------------
    def answers(self, model: str, requests: Sequence[bytes]) -> dict[bytes, str]:
        """The stored answers among ``requests`` (hashes from :func:`request_hash`)."""
        found: dict[bytes, str] = {}
        for start in range(0, len(requests), _BATCH):
            part = requests[start : start + _BATCH]
            marks = ",".join("?" * len(part))
            rows = self._db.execute(
                f"SELECT request, value FROM answers WHERE model = ? AND request IN ({marks})",
                (model, *part),
            )
            found.update((bytes(request), value) for request, value in rows)
        return found

    def put_answers(self, model: str, items: Iterable[tuple[bytes, str]]) -> None:
        """Store answers in one transaction: after a kill, all of them are there or none."""
        rows = [(model, request, value) for request, value in items]
        if not rows:
            return
        with self._transaction():
            self._db.executemany("INSERT OR REPLACE INTO answers VALUES (?, ?, ?)", rows)

    def count(self, model: str) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM answers WHERE model = ?", (model,)).fetchone()[0])

    # -- model descriptions -----------------------------------------------------------------------
    def model_info(self, identity: str) -> str | None:
        row = self._db.execute("SELECT info FROM models WHERE identity = ?", (identity,)).fetchone()
        return None if row is None else str(row[0])

    def put_model_info(self, identity: str, info: str) -> None:
        with self._transaction():
            self._db.execute("INSERT OR REPLACE INTO models VALUES (?, ?)", (identity, info))

    # -- file digests -----------------------------------------------------------------------------
    def digest(self, path: Path) -> str | None:
        """The stored digest of ``path`` if the file's size and modification time are unchanged."""
        stat = path.stat()
        row = self._db.execute(
            "SELECT digest FROM digests WHERE path = ? AND size = ? AND mtime_ns = ?",
            (str(path.resolve()), stat.st_size, stat.st_mtime_ns),
        ).fetchone()
        return None if row is None else str(row[0])

    def put_digest(self, path: Path, digest: str) -> None:
        stat = path.stat()
        with self._transaction():
            self._db.execute(
                "INSERT OR REPLACE INTO digests VALUES (?, ?, ?, ?)",
                (str(path.resolve()), stat.st_size, stat.st_mtime_ns, digest),
            )

    def close(self) -> None:
        self._db.close()


class _Transaction:
    """``BEGIN IMMEDIATE`` ... ``COMMIT``: takes the write lock up front, so writers queue, never deadlock."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, kind: object, error: object, trace: object) -> None:
        self._db.execute("COMMIT" if kind is None else "ROLLBACK")
