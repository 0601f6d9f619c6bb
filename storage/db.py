"""Engine and sessions. SQLite runs in WAL mode with a busy timeout and BEGIN IMMEDIATE,
so several processes can share one file without lost updates, and with `synchronous=FULL`, so
a committed transaction (an acknowledged order) survives a power cut."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from threading import Lock
from typing import NamedTuple

from alembic.util import CommandError
from sqlalchemy import Connection, Engine, event, func, or_, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DatabaseError, IntegrityError
from sqlmodel import Session, SQLModel, col, create_engine

from storage import migrations, models
from storage.errors import StorageUnavailable
from storage.models import ACTIVE_STATUSES
from storage.settings import get_settings

DEFAULT_CATALOG = (
    ("SKU-001", "Widget", 25, 1000),
    ("SKU-002", "Gadget", 10, 1000),
    ("SKU-003", "Gizmo", 50, 1000),
)
SQLITE_BUSY_TIMEOUT_MS = 30_000
READONLY_OPTION = "flowforge_readonly"
# PostgreSQL advisory lock held while a process migrates (one migrating process at a time)
MIGRATION_LOCK_KEY = 7406551

_engines: dict[str, Engine] = {}
_files: dict[str, tuple[Path, tuple[int, int]]] = {}  # SQLite url -> (file, its identity)
_engines_lock = Lock()


def database_url() -> str:
    return get_settings().resolved_database_url()


def get_engine(url: str | None = None, *, create: bool = False) -> Engine:
    """The engine for `url` (default: the configured database), its schema checked on first
    use. When `create` is set or it is the embedded default, a missing SQLite file is created
    and a schema behind the code migrated; otherwise both are refused, so a removed or mistyped
    database is never silently replaced by an empty one, nor an old one changed unasked."""
    url = url or database_url()
    with _engines_lock:
        engine = _engines.get(url)
        if engine is None:
            engine = _open(url, migrate=create or get_settings().is_embedded_default())
            _engines[url] = engine
    _check_same_file(url)
    return engine


def _open(url: str, *, migrate: bool) -> Engine:
    """A new engine on `url` whose schema is at head; any problem is one `StorageUnavailable`."""
    try:
        path = _sqlite_file(url)
        if path is not None and not path.exists():
            _refuse_missing(path, migrate)
        engine = _create_engine(url)
        try:
            _ready_schema(engine, migrate=migrate)
        except BaseException:
            engine.dispose()
            raise
    except (
        ArgumentError,
        ImportError,
        DatabaseError,
        CommandError,
        migrations.SchemaMismatch,
    ) as exc:
        reason = str(getattr(exc, "orig", None) or exc).splitlines()[0]
        raise StorageUnavailable(f"cannot use database {url!r}: {reason}") from exc
    if path is not None:
        _files[url] = (path, _identity(path))
    return engine


def _sqlite_file(url: str) -> Path | None:
    """The file of a SQLite URL (None for other databases and in-memory SQLite)."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database)


def _refuse_missing(path: Path, create: bool) -> None:
    if not create:
        raise StorageUnavailable(
            f"database {path} does not exist: create it with `python -m storage migrate`"
            " (or `reset`), or point FLOWFORGE_DB_PATH / DATABASE_URL at the existing one"
        )
    leftovers = [p.name for p in map(path.with_name, _journals(path)) if p.exists()]
    if leftovers:
        raise StorageUnavailable(
            f"database {path} does not exist but its journal does ({', '.join(leftovers)}): "
            "was it deleted? restore it, or move the journal away to start afresh"
        )
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        reason = "a file is in the way" if isinstance(exc, FileExistsError) else exc.strerror
        raise StorageUnavailable(f"cannot create database {path}: {reason}") from exc


def _journals(path: Path) -> list[str]:
    """SQLite's companion files of `path` (a new database must not inherit them)."""
    return [f"{path.name}{suffix}" for suffix in ("-wal", "-shm", "-journal")]


def _identity(path: Path) -> tuple[int, int]:
    stat = path.stat()
    return stat.st_dev, stat.st_ino


def _check_same_file(url: str) -> None:
    """Refuse to go on writing a SQLite file that was removed or replaced under us (the
    writes would land in a file nobody else can see)."""
    if url not in _files:
        return
    path, identity = _files[url]
    try:
        same = _identity(path) == identity
    except OSError:
        same = False
    if not same:
        raise StorageUnavailable(
            f"database {path} was removed or replaced since this process opened it; "
            "restore it or restart this process"
        )


def _create_engine(url: str) -> Engine:
    if make_url(url).get_backend_name() != "sqlite":
        settings = get_settings()  # processes x (size + overflow) < max_connections
        return create_engine(
            url,
            pool_pre_ping=True,
            pool_size=settings.db_pool_size,
            max_overflow=settings.db_max_overflow,
        )
    engine = create_engine(
        url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000, "check_same_thread": False}
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
        dbapi_connection.isolation_level = None  # we issue BEGIN ourselves
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA synchronous=FULL")  # NORMAL can lose the last commits
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection) -> None:  # type: ignore[no-untyped-def]
        # writers queue up front (no lock upgrade deadlocks); readers never block a writer
        readonly = connection.get_execution_options().get(READONLY_OPTION)
        connection.exec_driver_sql("BEGIN" if readonly else "BEGIN IMMEDIATE")

    return engine


def _ready_schema(engine: Engine, *, migrate: bool) -> None:
    """Check the schema is at head (one cheap read); behind it, migrate when allowed."""
    try:
        with engine.connect() as connection:
            migrations.check(connection.execution_options(**{READONLY_OPTION: True}))
    except migrations.SchemaBehind:
        if not migrate:
            raise
        with _migrating(engine) as connection:
            _upgrade(connection)


@contextmanager
def _migrating(engine: Engine) -> Iterator[Connection]:
    """A transaction that no other migration (nor, on SQLite, any writer) runs beside."""
    with engine.begin() as connection:
        if engine.dialect.name == "postgresql":
            connection.execute(text(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK_KEY})"))
        yield connection


def _upgrade(connection: Connection) -> None:
    """Migrate to head; load the default catalog into a database created from nothing."""
    if migrations.upgrade(connection):
        with Session(bind=connection) as session:
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


def migrate_database(url: str | None = None) -> None:
    """Create the database (with the default catalog) if it is new, or upgrade its schema."""
    get_engine(url, create=True)


class OrdersInProgress(RuntimeError):
    """A reset would destroy orders that are still being worked on."""

    def __init__(self, count: int) -> None:
        orders = "1 order is" if count == 1 else f"{count} orders are"
        super().__init__(
            f"refusing to reset: {orders} in progress (not finished, or leased by a running "
            "process); stop the intake and let them finish, or pass --force to destroy them"
        )


class Emptied(NamedTuple):
    """What a reset destroyed: every order, of which `in_progress` were not done."""

    orders: int
    in_progress: int


def reset_database(url: str | None = None, *, force: bool = False) -> Emptied:
    """Empty the database and load the default catalog, in one transaction (creating the
    database if need be; one migrated by a newer FlowForge is refused). While an order is in
    progress — not terminal, or under a live lease — it is refused with `OrdersInProgress`
    unless `force`: the orders would vanish under the process driving them."""
    engine = get_engine(url, create=True)
    with _migrating(engine) as connection:
        if engine.dialect.name == "postgresql":
            connection.execute(text("LOCK TABLE orders"))  # no order changes before the drop
        emptied = _orders(connection)
        if emptied.in_progress and not force:
            raise OrdersInProgress(emptied.in_progress)
        SQLModel.metadata.drop_all(connection)
        connection.execute(text(f"DROP TABLE IF EXISTS {migrations.VERSION_TABLE}"))
        _upgrade(connection)
    return emptied


def _orders(connection: Connection) -> Emptied:
    orders = select(func.count()).select_from(models.Order)
    in_progress = orders.where(
        or_(
            col(models.Order.status).in_(ACTIVE_STATUSES),
            col(models.Order.lease_expires_at) > models.utcnow(),
        )
    )
    return Emptied(
        connection.execute(orders).scalar_one(), connection.execute(in_progress).scalar_one()
    )
