"""Alembic migrations on SQLite and PostgreSQL: from empty to head and back, a pre-Alembic
database adopted, a database behind the code or ahead of it refused in one line, the models
and the scripts in agreement; an unusable database is a one-line error, not a traceback."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Column, Connection, Integer, Table, inspect, text
from sqlmodel import SQLModel

from storage import db as storage_db
from storage import migrations
from storage.__main__ import main as storage_main
from storage.db import get_engine, migrate_database
from storage.errors import StorageUnavailable
from storage.settings import get_settings
from tests.support import PYTHON, child_env, run_module

TABLES = set(SQLModel.metadata.tables) | {"alembic_version"}
HEAD = migrations.head()


@pytest.fixture(params=["sqlite", "postgresql"])
def fresh(request, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The URL of a database with nothing in it, configured as DATABASE_URL (so not the
    embedded default)."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path}/ff.sqlite3"
    else:
        from tests import postgres

        cluster = request.getfixturevalue("postgres_cluster")
        url = postgres.create_database(cluster, f"ff_migrations_{uuid.uuid4().hex[:12]}")
    monkeypatch.setenv("DATABASE_URL", url)
    get_settings.cache_clear()
    yield url
    forget(url)
    get_settings.cache_clear()


def forget(url: str) -> None:
    """Drop this process's engine on `url`, so that the next use opens (and checks) it anew."""
    engine = storage_db._engines.pop(url, None)
    if engine is not None:
        engine.dispose()


@contextmanager
def raw(url: str) -> Iterator[Connection]:
    """A transaction on `url` that bypasses FlowForge's checks (as an operator's SQL shell)."""
    engine = sqlalchemy.create_engine(url)
    try:
        with engine.begin() as connection:
            yield connection
    finally:
        engine.dispose()


def revision(url: str) -> str | None:
    with raw(url) as connection:
        return MigrationContext.configure(connection).get_current_revision()


def tables(url: str) -> set[str]:
    with raw(url) as connection:
        return set(inspect(connection).get_table_names())


def columns(url: str, table: str) -> set[str]:
    with raw(url) as connection:
        return {column["name"] for column in inspect(connection).get_columns(table)}


def differences(url: str) -> list:
    """What autogenerate would write to bring the database to the models (nothing, if agreed)."""
    with raw(url) as connection:
        return compare_metadata(MigrationContext.configure(connection), SQLModel.metadata)


def alembic(url: str, verb: str, target: str) -> None:
    """`alembic upgrade|downgrade TARGET` on `url`."""
    with raw(url) as connection:
        getattr(command, verb)(migrations.alembic_config(connection), target)


def insert_order(connection: Connection, order_id: str) -> None:
    """A completed order, written with the columns of its schema version (its one line in
    `lines` from revision 0004 on)."""
    lines = "lines" in {column["name"] for column in inspect(connection).get_columns("orders")}
    connection.execute(
        text(
            "INSERT INTO orders (order_id, workflow_id, product_id, quantity, customer_id,"
            " payment_method, amount, status, cancel_requested, created_at, updated_at"
            + (", lines" if lines else "")
            + ") VALUES (:id, :workflow, 'SKU-001', 1, 'c', 'tok_visa', 2500, 'completed',"
            " :cancel, :now, :now" + (", :lines" if lines else "") + ")"
        ),
        {
            "id": order_id,
            "workflow": f"order-{order_id}",
            "cancel": False,
            "now": now(),
            "lines": json.dumps([{"product_id": "SKU-001", "quantity": 1}]),
        },
    )


def now() -> datetime:
    return datetime.now(UTC)


def order_statuses(url: str) -> dict[str, str]:
    with raw(url) as connection:
        return dict(connection.execute(text("SELECT order_id, status FROM orders")).all())


def one_line_error(*args: str, env: dict[str, str] | None = None) -> str:
    """The single stderr line of `python -m storage args…`, which must exit 2."""
    done = run_module("storage", *args, env=env)
    assert done.returncode == 2, done.stdout + done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    return lines[0]


def test_upgrade_from_empty_creates_every_table_and_the_catalog(fresh):
    migrate_database()
    assert revision(fresh) == HEAD
    assert tables(fresh) == TABLES
    with raw(fresh) as connection:
        products = connection.execute(text("SELECT product_id FROM products")).scalars().all()
    assert sorted(products) == [product for product, *_ in storage_db.DEFAULT_CATALOG]


def test_the_models_and_the_migrations_agree(fresh):
    migrate_database()
    assert differences(fresh) == []


def test_upgrade_downgrade_upgrade_round_trips(fresh):
    migrate_database()
    alembic(fresh, "downgrade", "0001")
    assert revision(fresh) == "0001"
    assert "task_run_id" not in columns(fresh, "orders")
    alembic(fresh, "downgrade", "base")
    assert revision(fresh) is None
    assert tables(fresh) == {"alembic_version"}
    alembic(fresh, "upgrade", "head")
    assert revision(fresh) == HEAD
    assert tables(fresh) == TABLES
    assert differences(fresh) == []


@pytest.mark.e2e
@pytest.mark.parametrize("version", sorted(migrations.LEGACY_REVISIONS))
def test_a_pre_alembic_database_is_adopted_and_keeps_its_orders(fresh, version):
    alembic(fresh, "upgrade", migrations.LEGACY_REVISIONS[version])
    with raw(fresh) as connection:  # as the version table's FlowForge created it
        connection.execute(text("DROP TABLE alembic_version"))
        connection.execute(
            text("CREATE TABLE schema_version (id INTEGER PRIMARY KEY, version INTEGER NOT NULL)")
        )
        connection.execute(text("INSERT INTO schema_version VALUES (1, :v)"), {"v": version})
        insert_order(connection, "o1")
    message = (
        f"its schema is at version {version}, from before Alembic: run `python -m storage migrate`"
    )
    with pytest.raises(StorageUnavailable, match=re.escape(message)):
        get_engine()
    assert one_line_error("audit").endswith("run `python -m storage migrate`")

    done = run_module("storage", "migrate")
    assert done.returncode == 0, done.stderr
    assert revision(fresh) == HEAD
    assert tables(fresh) == TABLES  # the old version table is gone
    assert differences(fresh) == []
    assert order_statuses(fresh) == {"o1": "completed"}
    with raw(fresh) as connection:  # adopting adds no rows (no default catalog)
        assert connection.execute(text("SELECT count(*) FROM products")).scalar() == 0
    assert run_module("storage", "snapshot").returncode == 0


@pytest.mark.e2e
def test_a_database_behind_head_is_refused_until_migrated(fresh):
    migrate_database()
    with raw(fresh) as connection:
        insert_order(connection, "o1")
    forget(fresh)
    alembic(fresh, "downgrade", "0001")
    message = f"its schema is at revision 0001, behind head {HEAD}: run `python -m storage migrate`"
    with pytest.raises(StorageUnavailable, match=re.escape(message)):
        get_engine()
    assert one_line_error("snapshot") == (
        f"python -m storage: error: cannot use database {fresh!r}: {message}"
    )
    assert revision(fresh) == "0001"  # refused, not changed
    done = run_module("storage", "migrate")
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"migrated {fresh}: schema at revision {HEAD}\n"
    assert order_statuses(fresh) == {"o1": "completed"}
    assert "task_run_id" in columns(fresh, "orders")


@pytest.mark.e2e
def test_an_empty_database_is_refused_until_migrated(fresh):
    with raw(fresh) as connection:
        connection.execute(text("SELECT 1"))  # SQLite: the file now exists, empty
    assert one_line_error("audit").endswith(
        "it has no FlowForge schema: run `python -m storage migrate`"
    )
    assert tables(fresh) == set()


@pytest.mark.e2e
def test_the_embedded_default_migrates_itself(tmp_path):
    path = tmp_path / ".flowforge" / "flowforge.sqlite3"
    url = f"sqlite:///{path}"
    migrate_database(url)
    forget(url)
    with raw(url) as connection:
        insert_order(connection, "o1")
    alembic(url, "downgrade", "0001")
    env = child_env()
    env.pop("FLOWFORGE_DB_PATH", None)
    done = run_module("storage", "snapshot", env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert [order["order_id"] for order in json.loads(done.stdout)["orders"]] == ["o1"]
    assert revision(url) == HEAD


@pytest.mark.e2e
def test_a_database_ahead_of_the_code_is_refused(fresh):
    migrate_database()
    forget(fresh)
    with raw(fresh) as connection:
        insert_order(connection, "o1")
        connection.execute(text("UPDATE alembic_version SET version_num = '0099'"))
    message = (
        f"its schema is at revision 0099, unknown to this FlowForge (head {HEAD}): it was migrated "
        "by a newer FlowForge; upgrade FlowForge"
    )
    with pytest.raises(StorageUnavailable, match=re.escape(message)):
        get_engine()
    for args in (["audit"], ["migrate"], ["reset"]):
        assert one_line_error(*args).endswith(message)
    assert revision(fresh) == "0099"
    assert order_statuses(fresh) == {"o1": "completed"}


@pytest.fixture
def copied_scripts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the migration scripts, used instead of the package's."""
    location = tmp_path / "alembic"
    shutil.copytree(
        migrations.SCRIPT_LOCATION, location, ignore=shutil.ignore_patterns("__pycache__")
    )
    monkeypatch.setattr(migrations, "SCRIPT_LOCATION", location)
    return location


@pytest.fixture
def scratch_scripts(copied_scripts: Path) -> Iterator[Path]:
    """The copied scripts, and a `notes` table in the models that no script creates yet."""
    notes = Table("notes", SQLModel.metadata, Column("id", Integer, primary_key=True))
    try:
        yield copied_scripts
    finally:
        SQLModel.metadata.remove(notes)


@pytest.mark.e2e
def test_revision_writes_the_next_script_from_the_models(scratch_scripts, tmp_path, capsys):
    assert storage_main(["revision", "-m", "Add notes"]) == 0
    after_head = f"{int(HEAD) + 1:04d}"
    script = scratch_scripts / "versions" / f"{after_head}_add_notes.py"
    assert capsys.readouterr().out == f"wrote {script}\n"
    source = script.read_text()
    assert f'down_revision = "{HEAD}"' in source
    assert 'op.create_table(\n        "notes",' in source
    lint = subprocess.run([PYTHON, "-m", "ruff", "check", "--quiet", str(script)])
    assert lint.returncode == 0
    url = f"sqlite:///{tmp_path}/with-notes.sqlite3"
    alembic(url, "upgrade", "head")
    assert revision(url) == after_head
    assert "notes" in tables(url)
    alembic(url, "downgrade", HEAD)
    assert "notes" not in tables(url)


@pytest.mark.parametrize(
    ("message", "error"),
    [
        (
            "",
            "argument -m/--message: must say what the revision changes (it names the file), got ''",
        ),
        (
            " -- ",
            "argument -m/--message: must say what the revision changes (it names the "
            "file), got ' -- '",
        ),
        ("Add nothing", f"no schema change: the models match revision {HEAD}; nothing written"),
    ],
)
def test_revision_refuses_an_empty_message_or_no_schema_change(
    copied_scripts, capsys, message, error
):
    written = sorted((copied_scripts / "versions").iterdir())
    with pytest.raises(SystemExit) as refused:
        storage_main(["revision", "-m", message])
    assert refused.value.code == 2
    [line] = capsys.readouterr().err.splitlines()
    assert line.endswith(f"error: {error}")
    assert sorted((copied_scripts / "versions").iterdir()) == written


@pytest.mark.e2e
@pytest.mark.parametrize(
    ("module", "args"),
    [
        ("storage", ["snapshot"]),
        (
            "flows.fulfill",
            [
                "--product",
                "SKU-001",
                "--quantity",
                "1",
                "--customer",
                "c",
                "--payment-method",
                "tok_visa",
            ],
        ),
    ],
)
def test_unusable_database_url_is_one_line(module, args):
    done = run_module(module, *args, env=child_env(DATABASE_URL="nosuchdb://x/y"))
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"python -m {module}: error: cannot use database 'nosuchdb://x/y': "
        "Can't load plugin: sqlalchemy.dialects:nosuchdb"
    ]


def rows(url: str) -> dict[str, list[dict]]:
    """Every row of every FlowForge table, in a stable order; JSON values parsed."""
    with raw(url) as connection:
        found = {}
        for table in sorted(set(inspect(connection).get_table_names()) - {"alembic_version"}):
            result = connection.execute(text(f"SELECT * FROM {table}")).mappings()
            found[table] = sorted(
                ({k: _parsed(k, v) for k, v in row.items()} for row in result),
                key=repr,
            )
        return found


@pytest.mark.e2e
def test_a_populated_database_migrates_each_order_to_its_one_line(fresh):
    """Orders of every status with their reservations, charges, shipments and saga logs, at
    the revision before carts: the upgrade gives each order its one line and changes nothing
    else; the audit finds the same (nothing) before and after."""
    from bench.factory import fill_orders
    from storage import saga_log
    from storage.audit import broken_invariants
    from storage.db import session_scope
    from storage.models import OrderCreate

    migrate_database()
    fill_orders(44)  # completed, failed at each step, needs_attention, cancelled
    with session_scope() as session:
        waiting = OrderCreate(
            order_id="waiting",
            product_id="SKU-002",
            quantity=3,
            customer_id="c",
            payment_method="t",
        )
        saga_log.create_order(session, waiting)
        assert broken_invariants(session) == []
    forget(fresh)
    alembic(fresh, "downgrade", "0003")
    assert "lines" not in columns(fresh, "orders")
    before = rows(fresh)
    assert {order["status"] for order in before["orders"]} == {
        "completed",
        "failed",
        "needs_attention",
        "cancelled",
        "pending",
    }

    alembic(fresh, "upgrade", "head")
    after = rows(fresh)
    orders = after.pop("orders")
    assert [{k: v for k, v in o.items() if k != "lines"} for o in orders] == before.pop("orders")
    assert all(
        o["lines"] == [{"product_id": o["product_id"], "quantity": o["quantity"]}] for o in orders
    )
    assert after == before
    assert differences(fresh) == []
    forget(fresh)
    with session_scope() as session:
        assert broken_invariants(session) == []
        waiting_order = saga_log.get_order(session, order_id="waiting")
    assert [(line.product_id, line.quantity) for line in waiting_order.lines] == [("SKU-002", 3)]


@pytest.mark.e2e
def test_a_database_holding_carts_is_not_downgraded_below_them(fresh):
    from storage import saga_log
    from storage.db import session_scope
    from storage.models import OrderCreate

    migrate_database()
    with session_scope() as session:
        two = [{"product_id": "SKU-001", "quantity": 1}, {"product_id": "SKU-002", "quantity": 1}]
        saga_log.create_order(
            session, OrderCreate(order_id="cart", lines=two, customer_id="c", payment_method="t")
        )
    forget(fresh)
    with pytest.raises(RuntimeError, match="orders with several lines exist"):
        alembic(fresh, "downgrade", "0003")
    assert revision(fresh) == HEAD


def _parsed(column: str, value: object) -> object:
    """`lines` as a list: SQLite hands JSON back as text, PostgreSQL parsed."""
    return json.loads(value) if column == "lines" and isinstance(value, str) else value
