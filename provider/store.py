"""The provider's own SQLite database: charges and refunds, each created once per idempotency key.

One short-lived connection per operation (safe from uvicorn's thread pool); WAL mode and a busy
timeout; every write is one `BEGIN IMMEDIATE` transaction, and the UNIQUE idempotency keys make
"insert or return the existing row" exact under concurrent identical requests.

The file is created only when asked; once open, a file removed or replaced under the provider is
refused (`DatabaseUnavailable`), never silently recreated empty.
"""

from __future__ import annotations

import json
import secrets
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BUSY_TIMEOUT_S = 10.0

SCHEMA = """
CREATE TABLE IF NOT EXISTS charges (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    idempotency_key TEXT NOT NULL UNIQUE,
    fingerprint TEXT NOT NULL,
    amount INTEGER NOT NULL CHECK (amount > 0),
    currency TEXT NOT NULL,
    payment_method TEXT NOT NULL,
    customer TEXT,
    order_id TEXT,
    metadata TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('succeeded', 'refunded')),
    amount_refunded INTEGER NOT NULL DEFAULT 0,
    created INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS charges_order_id ON charges (order_id);
CREATE TABLE IF NOT EXISTS refunds (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    idempotency_key TEXT NOT NULL UNIQUE,
    fingerprint TEXT NOT NULL,
    charge TEXT NOT NULL UNIQUE REFERENCES charges (id),
    amount INTEGER NOT NULL,
    created INTEGER NOT NULL
);
"""


class DatabaseUnavailable(Exception):
    """The database file is missing, unusable, or was removed or replaced since it was opened."""


class Missing(LookupError):
    """No such charge (or paging cursor)."""


class ChargeAlreadyRefunded(Exception):
    """The charge was already refunded (under another idempotency key)."""


class PartialRefund(ValueError):
    """A refund amount other than the charge's: only full refunds exist."""


def _columns(row: sqlite3.Row) -> dict[str, Any]:
    """A row's columns by name, without the insertion counter `seq`."""
    return {key: row[key] for key in row.keys() if key != "seq"}  # noqa: SIM118 (a Row iterates its values)


@dataclass(frozen=True)
class Charge:
    """A stored charge."""

    id: str
    idempotency_key: str
    fingerprint: str
    amount: int
    currency: str
    payment_method: str
    customer: str | None
    order_id: str | None
    metadata: dict[str, str]
    status: str
    amount_refunded: int
    created: int

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> Charge:
        return cls(**{**_columns(row), "metadata": json.loads(row["metadata"])})


@dataclass(frozen=True)
class Refund:
    """A stored refund."""

    id: str
    idempotency_key: str
    fingerprint: str
    charge: str
    amount: int
    created: int

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> Refund:
        return cls(**_columns(row))


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
            with self._connect() as conn:
                conn.execute("PRAGMA journal_mode=WAL")
                conn.executescript(SCHEMA)
        except (sqlite3.Error, OSError) as exc:
            raise DatabaseUnavailable(f"cannot use database {path}: {exc}") from exc

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
    def _connect(self) -> Iterator[sqlite3.Connection]:
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
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._connect() as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    def charge(self, charge_id: str) -> Charge | None:
        with self._connect() as conn:
            row = conn.execute("SELECT * FROM charges WHERE id = ?", (charge_id,)).fetchone()
        return Charge.from_row(row) if row else None

    def charge_by_key(self, idempotency_key: str) -> Charge | None:
        with self._connect() as conn:
            row = conn.execute(
                "SELECT * FROM charges WHERE idempotency_key = ?", (idempotency_key,)
            ).fetchone()
        return Charge.from_row(row) if row else None

    def create_charge(
        self,
        *,
        idempotency_key: str,
        fingerprint: str,
        amount: int,
        currency: str,
        payment_method: str,
        customer: str | None,
        metadata: dict[str, str],
    ) -> Charge:
        """Insert a charge, or return the one already stored under this key (whatever its body)."""
        with self._transaction() as conn:
            conn.execute(
                "INSERT INTO charges (id, idempotency_key, fingerprint, amount, currency,"
                " payment_method, customer, order_id, metadata, status, created)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'succeeded', ?)"
                " ON CONFLICT (idempotency_key) DO NOTHING",
                (
                    "ch_" + secrets.token_hex(12),
                    idempotency_key,
                    fingerprint,
                    amount,
                    currency,
                    payment_method,
                    customer,
                    metadata.get("order_id"),
                    json.dumps(metadata, sort_keys=True),
                    int(time.time()),
                ),
            )
            row = conn.execute(
                "SELECT * FROM charges WHERE idempotency_key = ?", (idempotency_key,)
            ).fetchone()
        return Charge.from_row(row)

    def refund(
        self, *, idempotency_key: str, fingerprint: str, charge_id: str, amount: int | None
    ) -> Refund:
        """Refund a charge in full, or return the refund already stored under this key."""
        with self._transaction() as conn:
            row = conn.execute(
                "SELECT * FROM refunds WHERE idempotency_key = ?", (idempotency_key,)
            ).fetchone()
            if row is not None:
                return Refund.from_row(row)
            charge = conn.execute("SELECT * FROM charges WHERE id = ?", (charge_id,)).fetchone()
            if charge is None:
                raise Missing(charge_id)
            if charge["status"] == "refunded":
                raise ChargeAlreadyRefunded(charge_id)
            if amount is not None and amount != charge["amount"]:
                raise PartialRefund(charge_id)
            refund_id = "re_" + secrets.token_hex(12)
            conn.execute(
                "INSERT INTO refunds (id, idempotency_key, fingerprint, charge, amount, created)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (
                    refund_id,
                    idempotency_key,
                    fingerprint,
                    charge_id,
                    charge["amount"],
                    int(time.time()),
                ),
            )
            conn.execute(
                "UPDATE charges SET status = 'refunded', amount_refunded = amount WHERE id = ?",
                (charge_id,),
            )
            row = conn.execute("SELECT * FROM refunds WHERE id = ?", (refund_id,)).fetchone()
        return Refund.from_row(row)

    def charges(
        self, filters: dict[str, str], starting_after: str | None, limit: int
    ) -> tuple[list[Charge], bool]:
        """A page of charges (oldest first) matching the column filters, and whether more follow."""
        rows, has_more = self._page("charges", filters, starting_after, limit)
        return [Charge.from_row(row) for row in rows], has_more

    def refunds(
        self, filters: dict[str, str], starting_after: str | None, limit: int
    ) -> tuple[list[Refund], bool]:
        """A page of refunds (oldest first) matching the column filters, and whether more follow."""
        rows, has_more = self._page("refunds", filters, starting_after, limit)
        return [Refund.from_row(row) for row in rows], has_more

    def _page(
        self, table: str, filters: dict[str, str], starting_after: str | None, limit: int
    ) -> tuple[list[sqlite3.Row], bool]:
        # Table and column names come from this package, never from a request.
        where = [f"{column} = ?" for column in filters]
        args: list[object] = list(filters.values())
        with self._connect() as conn:
            if starting_after is not None:
                cursor = conn.execute(
                    f"SELECT seq FROM {table} WHERE id = ?", (starting_after,)
                ).fetchone()
                if cursor is None:
                    raise Missing(starting_after)
                where.append("seq > ?")
                args.append(cursor["seq"])
            sql = f"SELECT * FROM {table}"
            if where:
                sql += " WHERE " + " AND ".join(where)
            rows = conn.execute(f"{sql} ORDER BY seq LIMIT ?", [*args, limit + 1]).fetchall()
        return rows[:limit], len(rows) > limit
