"""Engine and sessions. SQLite runs in WAL mode with a busy timeout and BEGIN IMMEDIATE,
so several processes can share one file without lost updates."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from threading import Lock

from sqlalchemy import Engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, IntegrityError, NoSuchModuleError, OperationalError
from sqlmodel import Session, SQLModel, create_engine, select

from storage import models
from storage.errors import StorageUnavailable
from storage.migrations import SchemaTooNew, migrate
from storage.settings import get_settings

DEFAULT_CATALOG = (
    ("SKU-001", "Widget", 25, 1000),
    ("SKU-002", "Gadget", 10, 1000),
    ("SKU-003", "Gizmo", 50, 1000),
)
SQLITE_BUSY_TIMEOUT_MS = 30_000
READONLY_OPTION = "flowforge_readonly"

_engines: dict[str, Engine] = {}
_engines_lock = Lock()


def database_url() -> str:
    return get_settings().resolved_database_url()


def get_engine(url: str | None = None) -> Engine:
    """The engine for `url` (default: the configured database), schema ensured on first use."""
    url = url or database_url()
    with _engines_lock:
        engine = _engines.get(url)
        if engine is None:
            try:
                engine = _create_engine(url)
                ensure_schema(engine)
            except (ArgumentError, NoSuchModuleError, OperationalError, SchemaTooNew) as exc:
                reason = str(getattr(exc, "orig", None) or exc).splitlines()[0]
                raise StorageUnavailable(f"cannot use database {url!r}: {reason}") from exc
            _engines[url] = engine
        return engine


def _create_engine(url: str) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return create_engine(url, pool_pre_ping=True)
    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(
        url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000, "check_same_thread": False}
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
        dbapi_connection.isolation_level = None  # we issue BEGIN ourselves
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection) -> None:  # type: ignore[no-untyped-def]
        # writers queue up front (no lock upgrade deadlocks); readers never block a writer
        readonly = connection.get_execution_options().get(READONLY_OPTION)
        connection.exec_driver_sql("BEGIN" if readonly else "BEGIN IMMEDIATE")

    return engine


def ensure_schema(engine: Engine) -> None:
    """Create or upgrade the schema and load the default catalog into an empty database."""
    with engine.begin() as connection:
        if engine.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(7406551)"))
        migrate(connection)
        with Session(bind=connection) as session:
            if session.exec(select(models.Product).limit(1)).first() is None:
                load_default_catalog(session)
                session.flush()


def load_default_catalog(session: Session) -> None:
    for product_id, name, stock, unit_price in DEFAULT_CATALOG:
        session.add(
            models.Product(
                product_id=product_id,
                name=name,
                unit_price=unit_price,
                available=stock,
                reserved=0,
                total_received=stock,
            )
        )


def insert_once(session: Session, row: SQLModel) -> bool:
    """Insert `row` in a savepoint; False (and nothing inserted) when a unique key already
    holds it, as when a concurrent transaction on PostgreSQL inserted the same row first."""
    try:
        with session.begin_nested():
            session.add(row)
    except IntegrityError:
        return False
    return True


@contextmanager
def session_scope(url: str | None = None, *, readonly: bool = False) -> Iterator[Session]:
    """One transaction: committed when the block ends, rolled back on error. A `readonly`
    one sees a single snapshot (as the audit needs) and never holds up a writer: a deferred
    BEGIN on SQLite, REPEATABLE READ on PostgreSQL."""
    with Session(get_engine(url), expire_on_commit=False) as session:
        if readonly:
            postgres = session.get_bind().dialect.name == "postgresql"
            session.connection(
                execution_options={"isolation_level": "REPEATABLE READ"}
                if postgres
                else {READONLY_OPTION: True}
            )
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise


def reset_database(url: str | None = None) -> None:
    """Drop every FlowForge table, recreate them and load the default catalog."""
    engine = get_engine(url)
    with engine.begin() as connection:
        SQLModel.metadata.drop_all(connection)
    ensure_schema(engine)
