"""Bulk fixtures for the dashboard tests and the render bench: thousands of settled orders
written straight through storage in a few multi-row INSERTs, consistent enough that the audit
stays clean."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from itertools import cycle
from typing import Any

from sqlalchemy import insert, update
from sqlmodel import col

from storage.db import DEFAULT_CATALOG, session_scope
from storage.models import (
    Order,
    OrderLine,
    Payment,
    Product,
    Reservation,
    SagaEvent,
    SagaStep,
    StepKind,
    WarehouseRecord,
    utcnow,
)
from tasks import steps

STEPS = tuple(steps.step_names())
UNDO = {step.name: step.undo.name for step in steps.STEPS if step.undo is not None}
# every 20 orders: (status, step that failed, compensation that gave up)
MIX = (
    (("completed", None, None),) * 15
    + tuple(("failed", step, None) for step in STEPS[1:])
    + (("needs_attention", "update_warehouse", "refund_payment"), ("cancelled", None, None))
)
UNIT_PRICE = 1000


class Rows(dict[type, list[dict[str, Any]]]):
    """Rows to insert, per table."""

    def add(self, model: type, **values: Any) -> None:
        self.setdefault(model, []).append(values)


def _attempted(
    rows: Rows,
    order_id: str,
    name: str,
    kind: str,
    position: int,
    events: tuple[str, ...],
    clock: Iterator[datetime],
) -> None:
    """A saga-log row ending in the last of `events`; with two events, one attempt that began
    with the first (a single event is a registration that never ran)."""
    attempts = len(events) - 1
    rows.add(
        SagaStep,
        order_id=order_id,
        name=name,
        kind=kind,
        position=position,
        status=events[-1],
        attempts=attempts,
    )
    for event in events if attempts else ():
        rows.add(
            SagaEvent,
            order_id=order_id,
            step=name,
            status=event,
            attempt=1,
            timestamp=next(clock),
        )


def _saga(
    rows: Rows, order_id: str, status: str, failed: str | None, stuck: str | None, start: datetime
) -> set[str]:
    """Add one order's saga log: steps up to the failure, then its compensations in reverse.
    Returns the names of the side effects still in place."""
    ran = STEPS[: STEPS.index(failed) + 1] if failed else STEPS
    clock = (start + timedelta(milliseconds=7 * n) for n in range(40))
    kept = set()
    for position, name in enumerate(ran):
        outcome = "failed" if name == failed else "completed"
        _attempted(rows, order_id, name, StepKind.STEP, position, ("started", outcome), clock)
        if name in UNDO:
            kept.add(name)
    for position, name in reversed(list(enumerate(ran))):
        if name not in UNDO:
            continue
        if status == "completed":
            _attempted(
                rows, order_id, UNDO[name], StepKind.COMPENSATION, position, ("registered",), clock
            )
            continue
        outcome = "failed" if UNDO[name] == stuck else "compensated"
        _attempted(
            rows,
            order_id,
            UNDO[name],
            StepKind.COMPENSATION,
            position,
            ("compensating", outcome),
            clock,
        )
        if outcome == "compensated":
            kept.discard(name)
    return kept


def fill_orders(count: int) -> None:
    """Insert `count` settled orders with their reservations, payments, warehouse records and
    saga log, and top up the catalog so that stock stays conserved."""
    now = utcnow()
    rows = Rows()
    held: dict[str, int] = {}
    for n, (status, failed, stuck) in zip(range(count), cycle(MIX)):
        order_id = f"bulk-{n:06d}"
        product_id = DEFAULT_CATALOG[n % len(DEFAULT_CATALOG)][0]
        quantity, customer = 1 + n % 3, f"cust-{n % 97}"
        created = now - timedelta(seconds=2 * (count - n))
        kept = _saga(rows, order_id, status, failed, stuck, created)
        rows.add(
            Order,
            order_id=order_id,
            workflow_id=f"order-{order_id}",
            lines=(OrderLine(product_id=product_id, quantity=quantity),),
            product_id=product_id,
            quantity=quantity,
            customer_id=customer,
            payment_method="tok_visa",
            amount=quantity * UNIT_PRICE,
            status=status,
            failure_point=failed,
            failure_reason=f"injected failure at {failed}" if failed else None,
            created_at=created,
            updated_at=created + timedelta(seconds=1),
            finished_at=created + timedelta(milliseconds=300 + n % 900),
        )
        if "reserve_inventory" in kept:
            held[product_id] = held.get(product_id, 0) + quantity
        rows.add(
            Reservation,
            order_id=order_id,
            product_id=product_id,
            quantity=quantity,
            status="held" if "reserve_inventory" in kept else "released",
        )
        if failed != "reserve_inventory":
            rows.add(
                Payment,
                charge_id=f"ch_{order_id}",
                order_id=order_id,
                idempotency_key=f"{order_id}:payment",
                amount=quantity * UNIT_PRICE,
                payment_method="tok_visa",
                customer_id=customer,
                created_at=created,
                status="charged" if "process_payment" in kept else "refunded",
            )
        if status in {"completed", "cancelled"}:
            rows.add(
                WarehouseRecord,
                order_id=order_id,
                product_id=product_id,
                quantity=quantity,
                status="applied" if "update_warehouse" in kept else "reverted",
            )
    with session_scope() as session:
        for model, batch in rows.items():
            session.execute(insert(model), batch)
        for product_id, units in held.items():
            session.execute(
                update(Product)
                .where(col(Product.product_id) == product_id)
                .values(reserved=units, total_received=Product.available + units)
            )
