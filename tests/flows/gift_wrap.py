"""A fifth step declared outside FlowForge, as a shop would add one: `wrap_gift` with its
compensation `unwrap_gift`, whose side effect has state of its own (a `gift_wraps` row per
order), plus `notify_customer`, a step with no compensation. `with_gift_wrap()` puts them in
the step table; `python -m tests.flows.gift_wrap ORDER_ID` runs a recorded order with them in
a process of its own (for `CRASH_AT`)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import text
from sqlmodel import Session

from storage.models import Order
from tasks import steps
from tasks.saga_task import saga_task
from tasks.steps import Step

# its own table, made on first use (a real integration would add a model and a revision)
TABLE = "CREATE TABLE IF NOT EXISTS gift_wraps (order_id VARCHAR PRIMARY KEY, status VARCHAR)"


def gift_key(order_id: str) -> str:
    """The idempotency key the gift wrap and its undo are registered under."""
    return f"{order_id}:gift"


@saga_task(name="wrap_gift")
def wrap_gift(session: Session, order_id: str) -> None:
    """Wrap the order once: a second attempt finds it wrapped and adds nothing."""
    session.execute(text(TABLE))
    session.execute(
        text(
            "INSERT INTO gift_wraps (order_id, status) VALUES (:order_id, 'wrapped') "
            "ON CONFLICT (order_id) DO NOTHING"
        ),
        {"order_id": order_id},
    )


@saga_task(name="unwrap_gift", compensation=True)
def unwrap_gift(session: Session, order_id: str) -> None:
    """Compensation of wrap_gift: unwrap what was wrapped (nothing when nothing was)."""
    session.execute(text(TABLE))
    session.execute(
        text("UPDATE gift_wraps SET status = 'unwrapped' WHERE order_id = :order_id"),
        {"order_id": order_id},
    )


@saga_task(name="notify_customer")
def notify_customer(session: Session, order_id: str, customer_id: str) -> str:
    """Tell the customer (a step with no compensation)."""
    return f"told {customer_id} about {order_id}"


def no_args(order: Order) -> dict[str, Any]:
    return {}


def customer(order: Order) -> dict[str, Any]:
    return {"customer_id": order.customer_id}


def extended_table() -> tuple[Step, ...]:
    """The default table with the gift wrap before the warehouse and a notification last."""
    *head, warehouse = steps.STEPS
    return (
        *head,
        Step(wrap_gift, args=no_args, undo=unwrap_gift, key=gift_key),
        warehouse,
        Step(notify_customer, args=customer),
    )


@contextmanager
def with_gift_wrap() -> Iterator[None]:
    """The saga runs with the extended table inside this block."""
    default = steps.STEPS
    steps.STEPS = extended_table()
    try:
        yield
    finally:
        steps.STEPS = default


def gift_wraps(session: Session) -> dict[str, str]:
    """{order id: wrapped | unwrapped}."""
    session.execute(text(TABLE))
    return dict(session.execute(text("SELECT order_id, status FROM gift_wraps")).all())


if __name__ == "__main__":
    from flows.fulfill import run_order

    with with_gift_wrap():
        run_order(sys.argv[1])
