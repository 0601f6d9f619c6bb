"""Inventory: check and reserve stock; release it as compensation.

Each function here is written `fn(session, order_id, ...)`; `@saga_task` makes it
a task called as `task(order_id, lease_owner, ...)` (see tasks/saga_task.py)."""

from __future__ import annotations

from sqlmodel import Session

from storage import operations
from tasks.saga_task import saga_task


def reservation_key(order_id: str) -> str:
    """The idempotency key of the order's reservation (and of its release)."""
    return f"{order_id}:reservation"


@saga_task(name="check_inventory")
def check_inventory(session: Session, order_id: str, product_id: str, quantity: int) -> int:
    """Refuse an unknown product or too little stock; returns the units available."""
    return operations.check_stock(session, product_id=product_id, quantity=quantity).available


@saga_task(name="reserve_inventory")
def reserve_inventory(session: Session, order_id: str, product_id: str, quantity: int) -> int:
    """Hold the order's units (guarded update, one reservation per order)."""
    return operations.reserve_stock(
        session, order_id=order_id, product_id=product_id, quantity=quantity
    ).quantity


@saga_task(name="release_inventory", compensation=True)
def release_inventory(session: Session, order_id: str) -> bool:
    """Compensation of reserve_inventory: give the held units back (no-op if none)."""
    return operations.release_stock(session, order_id=order_id)
