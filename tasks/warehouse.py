"""Warehouse: write the order's shipment (a record per line); revert it as compensation.

Each function here is written `fn(session, order_id, ...)`; `@saga_task` makes it
a task called as `task(order_id, lease_owner, ...)` (see tasks/saga_task.py)."""

from __future__ import annotations

from sqlmodel import Session

from storage import operations
from storage.models import OrderLine
from tasks.saga_task import saga_task


def warehouse_key(order_id: str) -> str:
    """The idempotency key of the order's shipment record (and of its revert)."""
    return f"{order_id}:warehouse"


@saga_task(name="update_warehouse")
def update_warehouse(session: Session, order_id: str, lines: list[OrderLine]) -> int:
    """Record the shipment, a record per line, once per order; returns the lines shipped."""
    return len(operations.apply_warehouse(session, order_id=order_id, lines=lines))


@saga_task(name="revert_warehouse", compensation=True)
def revert_warehouse(session: Session, order_id: str) -> bool:
    """Compensation of update_warehouse: mark the shipment reverted (no-op if none)."""
    return operations.revert_warehouse(session, order_id=order_id)
