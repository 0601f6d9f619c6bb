"""The Prefect server's own database, when the stack runs it on PostgreSQL: checked and
prepared before the server starts (it needs the `pg_trgm` extension), so a mistake is one
line instead of a server that dies at start-up. It stays apart from FlowForge's database."""

from __future__ import annotations

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError

from storage.errors import StorageUnavailable

ASYNC_DRIVERS = {"postgresql": "asyncpg", "sqlite": "aiosqlite"}


def prepare_prefect_database(url: str) -> None:
    """Refuse a URL Prefect cannot use; on PostgreSQL create `pg_trgm` if it is missing."""
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise StorageUnavailable(f"Prefect database URL {url!r}: {exc}") from None
    backend, driver = parsed.get_backend_name(), parsed.get_driver_name()
    if ASYNC_DRIVERS.get(backend) != driver:
        raise StorageUnavailable(
            f"Prefect database URL {parsed.render_as_string()!r}: the Prefect server needs "
            "postgresql+asyncpg:// (or sqlite+aiosqlite://)"
        )
    if backend != "postgresql":
        return
    engine = create_engine(parsed.set(drivername="postgresql+psycopg"))
    try:
        with engine.begin() as connection:
            connection.execute(text("CREATE EXTENSION IF NOT EXISTS pg_trgm"))
    except DBAPIError as exc:
        reason = str(exc.orig).strip().splitlines()[0]
        raise StorageUnavailable(
            f"Prefect database {parsed.render_as_string()!r}: {reason} (it needs the pg_trgm "
            "extension: run CREATE EXTENSION pg_trgm there as a superuser)"
        ) from None
    finally:
        engine.dispose()
