"""The audit names every kind of violation: corrupt the data on purpose, read the verdict."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import update
from sqlmodel import col

from storage import operations, saga_log
from storage.audit import broken_invariants
from storage.db import session_scope
from storage.models import Order, OrderCreate, Payment, Product, WarehouseRecord, utcnow
from tests.storage.helpers import cart
from tests.support import run_module


def make_order(order_id: str, status: str, *, whole: bool = True) -> None:
    """An order with (when `whole`) one reservation, one charge and one warehouse record."""
    with session_scope() as s:
        saga_log.create_order(
            s,
            OrderCreate(
                order_id=order_id,
                product_id="SKU-001",
                quantity=2,
                customer_id="c1",
                payment_method="tok_visa",
            ),
        )
        saga_log.update_order(s, order_id=order_id, status=status)
        if whole:
            operations.reserve_stock(s, order_id=order_id, lines=cart(("SKU-001", 2)))
            operations.charge(
                s,
                order_id=order_id,
                idempotency_key=f"{order_id}:payment",
                amount=2000,
                payment_method="tok_visa",
                customer_id="c1",
            )
            operations.apply_warehouse(s, order_id=order_id, lines=cart(("SKU-001", 2)))


def problems() -> list[str]:
    with session_scope() as s:
        return broken_invariants(s)


def corrupt(statement) -> None:  # type: ignore[no-untyped-def]
    with session_scope() as s:
        s.execute(statement)


def test_clean_database_passes(database):
    make_order("good", "completed")
    assert problems() == []


@pytest.mark.parametrize(
    ("statement", "expected"),
    [
        (
            update(Product).where(col(Product.product_id) == "SKU-001").values(available=99),
            "stock not conserved for SKU-001",
        ),
        (
            update(Product)
            .where(col(Product.product_id) == "SKU-001")
            .values(available=-2, total_received=21),
            "negative available stock for SKU-001",
        ),
        (
            update(Product)
            .where(col(Product.product_id) == "SKU-001")
            .values(reserved=5, available=20),
            "reserved stock for SKU-001 is 5",
        ),
    ],
)
def test_stock_violations(database, statement, expected):
    make_order("o1", "completed")
    corrupt(statement)
    assert any(expected in p for p in problems()), problems()


@pytest.mark.parametrize(
    ("statement", "expected"),
    [
        (update(Payment).values(status="refunded"), "completed order o1 has charges []"),
        (update(Payment).values(amount=1), "completed order o1 has charges [1]"),
        (
            update(WarehouseRecord).values(status="reverted"),
            "completed order o1 has applied warehouse records [], expected its lines [2 x SKU-001]",
        ),
    ],
)
def test_completed_order_must_be_whole(database, statement, expected):
    make_order("o1", "completed")
    corrupt(statement)
    assert any(expected in p for p in problems()), problems()


def test_completed_order_without_reservation(database):
    make_order("o1", "completed")
    with session_scope() as s:
        operations.release_stock(s, order_id="o1")
    assert (
        "completed order o1 has held reservations [], expected its lines [2 x SKU-001]"
        in problems()
    )


@pytest.mark.parametrize("status", ["failed", "cancelled"])
def test_failed_order_must_hold_nothing(database, status):
    make_order("o1", status)
    found = problems()
    assert f"{status} order o1 still has a held reservation" in found
    assert f"{status} order o1 still has a charged payment" in found
    assert f"{status} order o1 still has a applied warehouse record" in found


def test_duplicate_charges(database):
    make_order("o1", "completed")
    with session_scope() as s:
        s.add(
            Payment(
                charge_id="ch_dup",
                order_id="o1",
                idempotency_key="other-key",
                amount=2000,
                payment_method="tok_visa",
                customer_id="c1",
            )
        )
    found = problems()
    assert "order o1 has 2 charged payments" in found
    assert "completed order o1 has charges [2000, 2000], expected exactly one of 2000" in found


def test_order_stuck_without_live_lease(database):
    make_order("o1", "running", whole=False)
    corrupt(update(Order).values(lease_owner="ghost", lease_expires_at=utcnow() - timedelta(1)))
    assert any(p.startswith("order o1 is running without a live lease") for p in problems())


def test_order_with_live_lease_is_fine(database):
    make_order("o1", "running", whole=False)
    with session_scope() as s:
        assert saga_log.acquire_lease(s, order_id="o1", owner="me", lease_seconds=60)
    assert problems() == []


@pytest.mark.e2e
def test_cli_exit_codes(database):
    clean = run_module("storage", "audit")
    assert clean.returncode == 0, clean.stderr
    make_order("o1", "failed")
    dirty = run_module("storage", "audit")
    assert dirty.returncode == 1
    assert "failed order o1 still has a held reservation" in dirty.stdout


def test_a_queued_order_is_healthy_until_it_waits_too_long(database):
    make_order("o1", "pending", whole=False)
    assert problems() == []  # just recorded: the intake has not taken it yet
    corrupt(update(Order).values(updated_at=utcnow() - timedelta(seconds=61)))
    assert [p for p in problems() if p.startswith("order o1 is pending without a live lease")]
    assert "is an intake running?" in problems()[0]


def test_a_cancellation_nobody_carries_out_is_reported(database):
    make_order("o1", "completed")
    corrupt(update(Order).values(cancel_requested=True))
    assert problems() == []  # just requested: queued for the intake
    corrupt(update(Order).values(updated_at=utcnow() - timedelta(seconds=61)))
    assert len(problems()) == 1
    assert problems()[0].startswith("order o1 is completed; its cancellation (")
