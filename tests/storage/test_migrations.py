"""Schema versions: stamped on creation, upgraded in order, a newer database refused; an
unusable database is a one-line error, not a traceback."""

from __future__ import annotations

import pytest
from sqlalchemy import inspect, text, update

from storage import db as storage_db
from storage import migrations
from storage.db import get_engine, session_scope
from storage.errors import StorageUnavailable
from storage.models import SchemaVersion
from tests.conftest import child_env, run_module


def version() -> int:
    with session_scope() as session:
        return session.get(SchemaVersion, 1).version


def reopen(url: str) -> None:
    """Forget this process's engine so the next use opens (and migrates) the database anew."""
    storage_db._engines.pop(url).dispose()


def test_new_database_is_stamped(db):
    assert version() == migrations.SCHEMA_VERSION


def test_older_database_is_upgraded_in_order(db, monkeypatch):
    engine = get_engine()
    url = engine.url.render_as_string(hide_password=False)
    applied = []
    nxt = migrations.SCHEMA_VERSION + 1

    def add_note_column(connection) -> None:
        connection.execute(text("ALTER TABLE products ADD COLUMN note TEXT"))
        applied.append(nxt)

    monkeypatch.setattr(migrations, "SCHEMA_VERSION", nxt)
    monkeypatch.setitem(migrations.UPGRADES, nxt, add_note_column)
    reopen(url)
    assert version() == nxt
    assert applied == [nxt]
    assert "note" in {c["name"] for c in inspect(get_engine()).get_columns("products")}


def test_version_1_database_gains_task_run_id_and_keeps_its_orders(db):
    engine = get_engine()
    url = engine.url.render_as_string(hide_password=False)
    with session_scope() as session:
        session.execute(
            text(
                "INSERT INTO orders (order_id, workflow_id, product_id, quantity,"
                " customer_id, payment_method, amount, status, cancel_requested,"
                " created_at, updated_at) VALUES ('o1', 'order-o1', 'SKU-001', 1,"
                " 'c', 'tok_visa', 1000, 'completed', 0, '2026-01-01', '2026-01-01')"
            )
        )
    with engine.begin() as connection:
        connection.execute(text("ALTER TABLE orders DROP COLUMN task_run_id"))
        connection.execute(update(SchemaVersion).values(version=1))
    reopen(url)
    assert version() == migrations.SCHEMA_VERSION
    columns = {c["name"] for c in inspect(get_engine()).get_columns("orders")}
    assert "task_run_id" in columns
    with session_scope() as session:
        assert session.execute(
            text("SELECT status FROM orders WHERE order_id = 'o1'")
        ).scalar() == ("completed")


def test_newer_database_is_refused(db):
    engine = get_engine()
    url = engine.url.render_as_string(hide_password=False)
    with session_scope() as session:
        session.execute(update(SchemaVersion).values(version=99))
    reopen(url)
    with pytest.raises(StorageUnavailable, match="schema version 99, newer than this FlowForge"):
        get_engine()
    done = run_module("storage", "audit")
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "newer than this FlowForge" in done.stderr


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
