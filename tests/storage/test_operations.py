"""Each side effect is atomic and idempotent; each undo is a no-op when there is nothing to undo."""

from __future__ import annotations

import pytest
from sqlmodel import select

from storage import operations
from storage.db import session_scope
from storage.errors import CardDeclined, DomainRefusal, InsufficientStock, UnknownProduct
from storage.models import Payment, Product, Reservation, WarehouseRecord
from tests.flows.helpers import engine_state
from tests.storage.helpers import cart, charge
from tests.support import assert_audit_clean


def product(product_id: str) -> Product:
    with session_scope() as session:
        return session.get(Product, product_id)


def test_default_catalog_is_loaded(database):
    stock = {
        p["product_id"]: (p["available"], p["unit_price"]) for p in engine_state()["inventory"]
    }
    assert stock == {"SKU-001": (25, 1000), "SKU-002": (10, 1000), "SKU-003": (50, 1000)}


def test_reserve_is_idempotent(database):
    with session_scope() as s:
        first = operations.reserve_stock(s, order_id="o1", lines=cart(("SKU-002", 4)))
    before = engine_state()
    with session_scope() as s:
        again = operations.reserve_stock(s, order_id="o1", lines=cart(("SKU-002", 4)))
    assert [r.id for r in again] == [r.id for r in first]
    assert engine_state() == before
    assert (product("SKU-002").available, product("SKU-002").reserved) == (6, 4)


def test_reserve_refuses_without_changing_anything(database):
    before = engine_state()
    with session_scope() as s, pytest.raises(InsufficientStock):
        operations.reserve_stock(s, order_id="o1", lines=cart(("SKU-002", 11)))
    with session_scope() as s, pytest.raises(UnknownProduct):
        operations.reserve_stock(s, order_id="o2", lines=cart(("NOPE", 1)))
    assert engine_state() == before


def test_release_twice_releases_once(database):
    with session_scope() as s:
        operations.reserve_stock(s, order_id="o1", lines=cart(("SKU-001", 5)))
    with session_scope() as s:
        assert operations.release_stock(s, order_id="o1") is True
    after_first = engine_state()
    with session_scope() as s:
        assert operations.release_stock(s, order_id="o1") is False
    assert engine_state() == after_first
    assert product("SKU-001").available == 25
    assert_audit_clean()


def test_release_with_nothing_held_is_a_noop(database):
    before = engine_state()
    with session_scope() as s:
        assert operations.release_stock(s, order_id="never") is False
    assert engine_state() == before


def test_charge_same_key_returns_first_charge(database):
    first = charge()
    before = engine_state()
    assert charge().charge_id == first.charge_id
    assert engine_state() == before
    with session_scope() as s:
        assert len(s.exec(select(Payment)).all()) == 1


def test_declined_card_charges_nothing(database):
    with pytest.raises(CardDeclined):
        charge(method="tok_declined")
    assert engine_state()["payments"] == []


def test_refund_by_key_once_and_noop_without_charge(database):
    charge()
    with session_scope() as s:
        assert operations.refund(s, idempotency_key="o1:payment") is True
    after = engine_state()
    with session_scope() as s:
        assert operations.refund(s, idempotency_key="o1:payment") is False
        assert operations.refund(s, idempotency_key="nobody:payment") is False
    assert engine_state() == after
    assert after["payments"][0]["status"] == "refunded"


def test_warehouse_apply_and_revert_are_idempotent(database):
    with session_scope() as s:
        first = operations.apply_warehouse(s, order_id="o1", lines=cart(("SKU-001", 2)))
    with session_scope() as s:
        again = operations.apply_warehouse(s, order_id="o1", lines=cart(("SKU-001", 2)))
        assert [r.id for r in again] == [r.id for r in first]
        assert operations.revert_warehouse(s, order_id="o1") is True
    after = engine_state()
    with session_scope() as s:
        assert operations.revert_warehouse(s, order_id="o1") is False
        assert operations.revert_warehouse(s, order_id="none") is False
        assert len(s.exec(select(WarehouseRecord)).all()) == 1
    assert engine_state() == after


def test_reservation_unique_per_order(database):
    with session_scope() as s:
        operations.reserve_stock(s, order_id="o1", lines=cart(("SKU-001", 1)))
        operations.reserve_stock(s, order_id="o1", lines=cart(("SKU-003", 9)))
    with session_scope() as s:
        assert len(s.exec(select(Reservation)).all()) == 1
    assert product("SKU-003").available == 50


def test_a_cart_is_reserved_whole_and_released_whole(database):
    three = cart(("SKU-003", 5), ("SKU-001", 2), ("SKU-002", 1))
    with session_scope() as s:
        held = operations.reserve_stock(s, order_id="o1", lines=three)
    assert [(r.product_id, r.quantity) for r in held] == [
        ("SKU-003", 5),
        ("SKU-001", 2),
        ("SKU-002", 1),
    ]
    stock = {p: (product(p).available, product(p).reserved) for p in ("SKU-001", "SKU-002")}
    assert stock == {"SKU-001": (23, 2), "SKU-002": (9, 1)}
    assert product("SKU-003").available == 45
    with session_scope() as s:
        assert operations.release_stock(s, order_id="o1") is True
    assert [product(p).available for p in ("SKU-001", "SKU-002", "SKU-003")] == [25, 10, 50]
    assert_audit_clean()


@pytest.mark.parametrize(
    ("lines", "refusal"),
    [
        (
            (("SKU-001", 2), ("SKU-003", 5), ("SKU-002", 11)),
            "line 3: insufficient stock for SKU-002",
        ),
        ((("SKU-001", 2), ("NOPE", 1)), "line 2: unknown product 'NOPE'"),
    ],
)
def test_a_cart_with_a_line_that_cannot_be_served_reserves_nothing(database, lines, refusal):
    before = engine_state()
    with session_scope() as s, pytest.raises(DomainRefusal, match=refusal):
        operations.reserve_stock(s, order_id="o1", lines=cart(*lines))
    with session_scope() as s, pytest.raises(DomainRefusal, match=refusal):
        operations.check_stock(s, lines=cart(*lines))
    assert engine_state() == before
