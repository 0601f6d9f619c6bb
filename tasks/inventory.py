"""Inventory: check and reserve stock; release it as compensation.

Each function here is written `fn(session, order_id, ...)`; `@saga_task` makes it
a task called as `task(order_id, lease_owner, ...)` (see tasks/saga_task.py)."""

from __future__ import annotations

from sqlmodel import Session

from storage import operations
from storage.models import OrderLine
from tasks.saga_task import saga_task


def reservation_key(order_id: str) -> str:
    """The idempotency key of the order's reservation (and of its release)."""
    return f"{order_id}:reservation"


@saga_task(name="check_inventory")
def check_inventory(session: Session, order_id: str, lines: list[OrderLine]) -> int:
    """Refuse, naming the line, an unknown product or too little stock; returns the units
    available for the cart."""
    return operations.check_stock(session, lines=lines)


@saga_task(name="reserve_inventory")
def reserve_inventory(session: Session, order_id: str, lines: list[OrderLine]) -> int:
    """Hold every line's units or none (guarded updates in one transaction, one reservation
    per line); returns the units held."""
    reservations = operations.reserve_stock(session, order_id=order_id, lines=lines)
    return sum(reservation.quantity for reservation in reservations)


@saga_task(name="release_inventory", compensation=True)
def release_inventory(session: Session, order_id: str) -> bool:
    """Compensation of reserve_inventory: give every line's held units back (no-op if none)."""
    return operations.release_stock(session, order_id=order_id)
