"""The provider's own SQLite database: Stripe's objects (payment methods, PaymentIntents, their
charges and refunds) and the answers stored under each idempotency key.

One short-lived connection per operation (safe from uvicorn's thread pool); WAL mode and a busy
timeout; every write is one `BEGIN IMMEDIATE` transaction, so operations on one PaymentIntent are
serialized as Stripe serializes them.

The file is created only when asked; once open, a file removed or replaced under the provider is
refused (`DatabaseUnavailable`), never silently recreated empty. A file of the provider before it
spoke Stripe's API (schema version 0 with tables) is refused too: its books cannot be read as
PaymentIntents.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

BUSY_TIMEOUT_S = 10.0
SCHEMA_VERSION = 2

SCHEMA = """
CREATE TABLE IF NOT EXISTS payment_methods (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    card TEXT NOT NULL,
    created INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS payment_intents (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    amount INTEGER NOT NULL CHECK (amount > 0),
    currency TEXT NOT NULL,
    status TEXT NOT NULL,
    payment_method TEXT,
    description TEXT,
    metadata TEXT NOT NULL,
    latest_charge TEXT,
    last_payment_error TEXT,
    cancellation_reason TEXT,
    canceled_at INTEGER,
    created INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS charges (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    payment_intent TEXT NOT NULL REFERENCES payment_intents (id),
    amount INTEGER NOT NULL,
    currency TEXT NOT NULL,
    payment_method TEXT NOT NULL,
    amount_refunded INTEGER NOT NULL DEFAULT 0,
    created INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS refunds (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    payment_intent TEXT NOT NULL,
    charge TEXT NOT NULL UNIQUE REFERENCES charges (id),
    amount INTEGER NOT NULL,
    currency TEXT NOT NULL,
    reason TEXT,
    created INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS idempotency (
    key TEXT PRIMARY KEY,
    fingerprint TEXT NOT NULL,
    status INTEGER,  -- NULL while the first request with this key is in flight
    body TEXT
);
"""


class DatabaseUnavailable(Exception):
    """The database file is missing, unusable, or was removed or replaced since it was opened."""


def _identity(path: Path) -> tuple[int, int]:
    stat = path.stat()
    return stat.st_dev, stat.st_ino


def _journals(path: Path) -> list[Path]:
    """SQLite's companion files of `path` that exist (a new database must not inherit them)."""
    names = (f"{path.name}{suffix}" for suffix in ("-wal", "-shm", "-journal"))
    return [journal for journal in map(path.with_name, names) if journal.exists()]


class Store:
    """The provider's database file: created only when `create` is set and it does not exist."""

    def __init__(self, path: Path, *, create: bool = False) -> None:
        self.path = path
        self._uri = path.absolute().as_uri()
        try:
            if not path.exists():
                self._create(create)
            self._identity = _identity(path)
            with self.read() as conn:
                self._schema(conn)
        except (sqlite3.Error, OSError) as exc:
            raise DatabaseUnavailable(f"cannot use database {path}: {exc}") from exc

    def _schema(self, conn: sqlite3.Connection) -> None:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        tables = conn.execute("SELECT count(*) FROM sqlite_master WHERE type = 'table'").fetchone()
        if version != SCHEMA_VERSION and tables[0]:
            raise DatabaseUnavailable(
                f"database {self.path} holds the books of the provider before it spoke Stripe's"
                f" API (schema version {version}): keep it for the record, and start with --create"
                " on another file"
            )
        conn.execute("PRAGMA journal_mode=WAL")
        conn.executescript(SCHEMA)
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    def _create(self, create: bool) -> None:
        if not create:
            raise DatabaseUnavailable(
                f"database {self.path} does not exist: start with --create to make a new one,"
                " or point --db at the existing one"
            )
        if leftovers := _journals(self.path):
            raise DatabaseUnavailable(
                f"database {self.path} does not exist but its journal does"
                f" ({', '.join(p.name for p in leftovers)}): was it deleted? restore it, or"
                " move the journal away to start afresh"
            )
        self.path.parent.mkdir(parents=True, exist_ok=True)
        sqlite3.connect(f"{self._uri}?mode=rwc", uri=True).close()

    def check(self) -> None:
        """Refuse a database file removed or replaced since the provider opened it (writes
        would land in a file nobody else sees, and a restart would start from it)."""
        try:
            same = _identity(self.path) == self._identity
        except OSError:
            same = False
        if not same:
            raise DatabaseUnavailable(
                f"database {self.path} was removed or replaced since the provider opened it:"
                " restore it, or restart the provider (with --create to start afresh)"
            )

    @contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        """A connection of its own (reads see the last committed state)."""
        try:
            conn = sqlite3.connect(  # mode=rw: connecting never creates the file
                f"{self._uri}?mode=rw", uri=True, timeout=BUSY_TIMEOUT_S, isolation_level=None
            )
        except sqlite3.OperationalError:
            self.check()  # the file went away just now: say so
            raise
        try:
            self.check()  # after opening, so a file swapped in before the open is refused too
            conn.row_factory = sqlite3.Row
            yield conn
        finally:
            conn.close()

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """One `BEGIN IMMEDIATE` transaction: committed when the block ends, else rolled back."""
        with self.read() as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
