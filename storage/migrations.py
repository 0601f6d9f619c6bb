"""Schema versions. A new database is created at `SCHEMA_VERSION`; an older one is upgraded
one version at a time by `UPGRADES`, in the transaction that opens it; a database written by
a newer FlowForge is refused rather than misread."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import Connection, text
from sqlmodel import Session, SQLModel, select

from storage.models import SchemaVersion

SCHEMA_VERSION = 2


def _add_task_run_id(connection: Connection) -> None:
    """2: orders run by the intake remember their `fulfill-order` task run."""
    connection.execute(text("ALTER TABLE orders ADD COLUMN task_run_id VARCHAR"))


# UPGRADES[n] takes a database from version n - 1 to n (add one entry per schema change).
UPGRADES: dict[int, Callable[[Connection], None]] = {2: _add_task_run_id}


class SchemaTooNew(RuntimeError):
    def __init__(self, found: int) -> None:
        super().__init__(
            f"the database is at schema version {found}, newer than this FlowForge "
            f"({SCHEMA_VERSION}); upgrade FlowForge"
        )


def migrate(connection: Connection) -> int:
    """Bring the schema to `SCHEMA_VERSION`; returns the version found before."""
    SQLModel.metadata.create_all(connection)  # a new database: every table at this version
    with Session(bind=connection) as session:
        row = session.exec(select(SchemaVersion)).first() or SchemaVersion(version=SCHEMA_VERSION)
        found = row.version
        if found > SCHEMA_VERSION:
            raise SchemaTooNew(found)
        for version in range(row.version + 1, SCHEMA_VERSION + 1):
            UPGRADES[version](connection)
        row.version = SCHEMA_VERSION
        session.add(row)
        session.flush()
    return found
