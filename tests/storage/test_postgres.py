"""The same saga on a real PostgreSQL: operations, compensation, racing processes."""

from __future__ import annotations

import pytest

from storage import operations
from storage.db import session_scope
from storage.errors import InsufficientStock
from storage.settings import get_settings
from tests.flows.helpers import engine_state, place, race
from tests.storage.helpers import cart, charge
from tests.support import assert_audit_clean

pytestmark = pytest.mark.usefixtures("pg_db")


def test_operations_are_idempotent_on_postgres():
    with session_scope() as s:
        first = operations.reserve_stock(s, order_id="o1", lines=cart(("SKU-002", 4)))
    with session_scope() as s:
        again = operations.reserve_stock(s, order_id="o1", lines=cart(("SKU-002", 4)))
    assert [r.id for r in again] == [r.id for r in first]
    first_charge = charge()
    assert charge().charge_id == first_charge.charge_id
    with session_scope() as s, pytest.raises(InsufficientStock):
        operations.reserve_stock(s, order_id="o2", lines=cart(("SKU-002", 7)))
    sku = next(p for p in engine_state()["inventory"] if p["product_id"] == "SKU-002")
    assert (sku["available"], sku["reserved"]) == (6, 4)


@pytest.mark.usefixtures("prefect_server")
def test_saga_on_postgres(monkeypatch):
    assert place().status == "completed"
    monkeypatch.setenv("FAIL_AT", "warehouse")
    failed = place()
    assert failed.status == "failed"
    assert failed.compensations == ["revert_warehouse", "refund_payment", "release_inventory"]
    assert_audit_clean()


def test_eight_racing_processes_on_postgres_sell_exactly_the_stock(prefect_server):
    results = race(prefect_server, 8, product_id="SKU-002", quantity=2)  # 10 units: 5 orders
    assert sorted(r["status"] for r in results) == ["completed"] * 5 + ["failed"] * 3
    sku = next(p for p in engine_state()["inventory"] if p["product_id"] == "SKU-002")
    assert (sku["available"], sku["reserved"]) == (0, 10)
    assert_audit_clean()


def test_the_connection_pool_is_sized_by_settings(pg_db, monkeypatch):
    from storage import db as storage_db

    monkeypatch.setenv("FLOWFORGE_DB_POOL_SIZE", "3")
    monkeypatch.setenv("FLOWFORGE_DB_MAX_OVERFLOW", "1")
    get_settings.cache_clear()
    storage_db._engines.pop(pg_db).dispose()  # opened by the fixture with the defaults
    pool = storage_db.get_engine().pool
    assert (pool.size(), pool._max_overflow) == (3, 1)
