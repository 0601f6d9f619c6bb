"""`python -m storage reset` refuses to destroy orders still being worked on (not terminal,
or leased by a running process) unless `--force`, which says how many it destroyed."""

from __future__ import annotations

import pytest

from storage import saga_log
from storage.db import session_scope
from storage.models import OrderCreate, OrderStatus
from tests.support import run_module


def record(order_id: str, status: str, *, leased: bool = False) -> None:
    with session_scope() as session:
        saga_log.create_order(
            session,
            OrderCreate(
                order_id=order_id,
                product_id="SKU-001",
                quantity=1,
                customer_id="c1",
                payment_method="tok_visa",
            ),
            lease_owner="intake:elsewhere" if leased else None,
            lease_seconds=60,
        )
        saga_log.update_order(session, order_id=order_id, status=status)


def order_ids() -> list[str]:
    with session_scope(readonly=True) as session:
        return [order.order_id for order in saga_log.list_orders(session)]


@pytest.mark.e2e
def test_finished_orders_are_reset(database):
    for status in ("completed", "failed", "needs_attention", "cancelled"):
        record(status, status)
    done = run_module("storage", "reset")
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    assert order_ids() == []


@pytest.mark.e2e
@pytest.mark.parametrize(
    ("orders", "count"),
    [
        ([("p", OrderStatus.PENDING, False)], "1 order is"),  # recorded, no intake yet
        (
            [("r", OrderStatus.RUNNING, True), ("c", OrderStatus.COMPENSATING, False)],
            "2 orders are",
        ),
        ([("x", OrderStatus.COMPLETED, True), ("d", OrderStatus.COMPLETED, False)], "1 order is"),
    ],
)
def test_orders_in_progress_are_refused_in_one_line(database, orders, count):
    for order_id, status, leased in orders:
        record(order_id, status, leased=leased)
    refused = run_module("storage", "reset")
    assert refused.returncode == 2
    assert refused.stderr.splitlines() == [
        f"python -m storage: error: refusing to reset: {count} in progress (not finished, or "
        "leased by a running process); stop the intake and let them finish, or pass --force "
        "to destroy them"
    ]
    assert refused.stdout == ""
    assert sorted(order_ids()) == sorted(order_id for order_id, _, _ in orders)


@pytest.mark.e2e
def test_force_resets_anyway_and_says_what_it_destroyed(database):
    record("a", OrderStatus.RUNNING, leased=True)
    record("b", OrderStatus.PENDING)
    record("c", OrderStatus.COMPLETED)
    forced = run_module("storage", "reset", "--force")
    assert forced.returncode == 0, forced.stderr
    assert forced.stderr.splitlines() == [
        "python -m storage: warning: --force: destroyed 2 order(s) in progress, 3 in all"
    ]
    assert forced.stdout.endswith(": default catalog loaded\n")
    assert order_ids() == []
