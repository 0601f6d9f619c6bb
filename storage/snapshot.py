"""The engine snapshot and the per-order summary, as plain JSON-ready dicts."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar

from sqlmodel import Session, col, select
from sqlmodel.sql.expression import SelectOfScalar

from storage.models import (
    EventStatus,
    Order,
    Payment,
    Product,
    SagaEvent,
    SagaStep,
    StepStatus,
    WarehouseRecord,
)

BATCH = 500
T = TypeVar("T")


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of a listing; `next_offset` is where the next page starts, None on the last."""

    items: T
    next_offset: int | None


def _rows(
    session: Session, statement: SelectOfScalar[T], *, limit: int, offset: int
) -> Page[list[T]]:
    """At most `limit` rows of `statement` from `offset` on: one query, for one row more."""
    rows = list(session.exec(statement.offset(offset).limit(limit + 1)).all())
    if len(rows) > limit:
        return Page(rows[:limit], offset + limit)
    return Page(rows, None)


def iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def event_dict(event: SagaEvent) -> dict[str, Any]:
    return {
        "step": event.step,
        "status": event.status,
        "attempt": event.attempt,
        "message": event.message,
        "timestamp": iso(event.timestamp),
    }


def order_summary(session: Session, order: Order, *, with_events: bool = True) -> dict[str, Any]:
    """The order as the CLI's `--json` and the API report it."""
    return order_summaries(session, [order], with_events=with_events)[0]


def order_summaries(
    session: Session, orders: Sequence[Order], *, with_events: bool = False
) -> list[dict[str, Any]]:
    """Summaries of many orders with two queries per batch, not two per order."""
    steps: dict[str, list[SagaStep]] = defaultdict(list)
    events: dict[str, list[SagaEvent]] = defaultdict(list)
    ids = [order.order_id for order in orders]
    for start in range(0, len(ids), BATCH):
        batch = ids[start : start + BATCH]
        for step in session.exec(
            select(SagaStep)
            .where(col(SagaStep.order_id).in_(batch))
            .order_by(col(SagaStep.position), col(SagaStep.kind).desc())
        ):
            steps[step.order_id].append(step)
        wanted = select(SagaEvent).where(col(SagaEvent.order_id).in_(batch))
        if not with_events:  # only what the compensation order needs
            wanted = wanted.where(SagaEvent.status == EventStatus.COMPENSATING)
        for event in session.exec(wanted.order_by(col(SagaEvent.id))):
            events[event.order_id].append(event)
    return [
        _summary(order, steps[order.order_id], events[order.order_id], with_events)
        for order in orders
    ]


def _summary(
    order: Order, steps: list[SagaStep], order_events: list[SagaEvent], with_events: bool
) -> dict[str, Any]:
    compensations: list[str] = []
    for event in order_events:
        if event.status == EventStatus.COMPENSATING and event.step not in compensations:
            compensations.append(event.step)
    summary: dict[str, Any] = {
        "order_id": order.order_id,
        "workflow_id": order.workflow_id,
        "status": order.status,
        "product_id": order.product_id,
        "quantity": order.quantity,
        "customer_id": order.customer_id,
        "amount": order.amount,
        "current_step": order.current_step,
        "steps_completed": [
            s.name for s in steps if s.kind == "step" and s.status == StepStatus.COMPLETED
        ],
        "compensations": compensations,
        "compensation_triggered": bool(compensations),
        "failure_reason": order.failure_reason,
        "failure_point": order.failure_point,
        "cancel_requested": order.cancel_requested,
        "flow_run_id": order.flow_run_id,
        "task_run_id": order.task_run_id,
        "created_at": iso(order.created_at),
        "finished_at": iso(order.finished_at),
        "saga": [
            {
                "name": s.name,
                "kind": s.kind,
                "status": s.status,
                "attempts": s.attempts,
                "error": s.error,
                "started_at": iso(s.started_at),
                "finished_at": iso(s.finished_at),
            }
            for s in steps
        ],
    }
    if with_events:
        summary["events"] = [event_dict(e) for e in order_events]
    return summary


def product_dict(p: Product) -> dict[str, Any]:
    return {
        "product_id": p.product_id,
        "name": p.name,
        "unit_price": p.unit_price,
        "available": p.available,
        "reserved": p.reserved,
        "total_received": p.total_received,
    }


def inventory(session: Session) -> list[dict[str, Any]]:
    rows = session.exec(select(Product).order_by(Product.product_id)).all()
    return [product_dict(p) for p in rows]


def payment_dict(p: Payment) -> dict[str, Any]:
    return {
        "charge_id": p.charge_id,
        "order_id": p.order_id,
        "amount": p.amount,
        "payment_method": p.payment_method,
        "idempotency_key": p.idempotency_key,
        "status": p.status,
        "created_at": iso(p.created_at),
        "refunded_at": iso(p.refunded_at),
    }


def payments(session: Session) -> list[dict[str, Any]]:
    rows = session.exec(select(Payment).order_by(col(Payment.created_at))).all()
    return [payment_dict(p) for p in rows]


def warehouse_dict(w: WarehouseRecord) -> dict[str, Any]:
    return {
        "order_id": w.order_id,
        "product_id": w.product_id,
        "quantity": w.quantity,
        "status": w.status,
        "created_at": iso(w.created_at),
    }


def warehouse(session: Session) -> list[dict[str, Any]]:
    rows = session.exec(select(WarehouseRecord).order_by(col(WarehouseRecord.id))).all()
    return [warehouse_dict(w) for w in rows]


def warehouse_page(session: Session, *, limit: int, offset: int) -> Page[list[dict[str, Any]]]:
    """A page of warehouse records, newest first."""
    newest_first = select(WarehouseRecord).order_by(col(WarehouseRecord.id).desc())
    page = _rows(session, newest_first, limit=limit, offset=offset)
    return Page([warehouse_dict(w) for w in page.items], page.next_offset)


def snapshot(session: Session) -> dict[str, Any]:
    """Everything, oldest order first (the admin CLI's snapshot)."""
    orders = session.exec(select(Order).order_by(col(Order.created_at))).all()
    return {
        "orders": order_summaries(session, orders),
        "inventory": inventory(session),
        "payments": payments(session),
        "warehouse": warehouse(session),
    }


def snapshot_page(session: Session, *, limit: int, offset: int) -> Page[dict[str, Any]]:
    """The snapshot of a page of orders, newest first: those orders, their payments and
    warehouse records, and the whole inventory (a catalog is small)."""
    newest_first = select(Order).order_by(col(Order.created_at).desc(), col(Order.order_id).desc())
    page = _rows(session, newest_first, limit=limit, offset=offset)
    ids = [order.order_id for order in page.items]
    charges = session.exec(
        select(Payment)
        .where(col(Payment.order_id).in_(ids))
        .order_by(col(Payment.created_at).desc())
    ).all()
    records = session.exec(
        select(WarehouseRecord)
        .where(col(WarehouseRecord.order_id).in_(ids))
        .order_by(col(WarehouseRecord.id).desc())
    ).all()
    found = {
        "orders": order_summaries(session, page.items),
        "inventory": inventory(session),
        "payments": [payment_dict(p) for p in charges],
        "warehouse": [warehouse_dict(w) for w in records],
    }
    return Page(found, page.next_offset)
