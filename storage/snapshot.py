"""The engine snapshot and the per-order summary, read into the views of `storage.views`."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from sqlmodel import Session, col, select
from sqlmodel.sql.expression import SelectOfScalar

from storage.models import (
    EventStatus,
    Order,
    Payment,
    Product,
    SagaEvent,
    SagaStep,
    StepKind,
    StepStatus,
    WarehouseRecord,
)
from storage.views import (
    EngineSnapshot,
    InventoryView,
    OrderSummary,
    PaymentView,
    WarehouseView,
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


def order_summary(session: Session, order: Order, *, with_events: bool = True) -> OrderSummary:
    """The order as the CLI's `--json` and the API report it."""
    return order_summaries(session, [order], with_events=with_events)[0]


def order_summaries(
    session: Session, orders: Sequence[Order], *, with_events: bool = False
) -> list[OrderSummary]:
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
) -> OrderSummary:
    compensations: list[str] = []
    for event in order_events:
        if event.status == EventStatus.COMPENSATING and event.step not in compensations:
            compensations.append(event.step)
    return OrderSummary.model_validate(
        {
            **order.model_dump(),
            "steps_completed": [
                s.name
                for s in steps
                if s.kind == StepKind.STEP and s.status == StepStatus.COMPLETED
            ],
            "compensations": compensations,
            "compensation_triggered": bool(compensations),
            "saga": steps,
            "events": order_events if with_events else None,
        }
    )


def inventory(session: Session) -> list[InventoryView]:
    rows = session.exec(select(Product).order_by(Product.product_id)).all()
    return [InventoryView.model_validate(p) for p in rows]


def payments(session: Session) -> list[PaymentView]:
    rows = session.exec(select(Payment).order_by(col(Payment.created_at))).all()
    return [PaymentView.model_validate(p) for p in rows]


def warehouse(session: Session) -> list[WarehouseView]:
    rows = session.exec(select(WarehouseRecord).order_by(col(WarehouseRecord.id))).all()
    return [WarehouseView.model_validate(w) for w in rows]


def warehouse_page(session: Session, *, limit: int, offset: int) -> Page[list[WarehouseView]]:
    """A page of warehouse records, newest first."""
    newest_first = select(WarehouseRecord).order_by(col(WarehouseRecord.id).desc())
    page = _rows(session, newest_first, limit=limit, offset=offset)
    return Page([WarehouseView.model_validate(w) for w in page.items], page.next_offset)


def snapshot(session: Session) -> EngineSnapshot:
    """Everything, oldest order first (the admin CLI's snapshot)."""
    orders = session.exec(select(Order).order_by(col(Order.created_at))).all()
    return EngineSnapshot(
        orders=order_summaries(session, orders),
        inventory=inventory(session),
        payments=payments(session),
        warehouse=warehouse(session),
    )


def snapshot_page(session: Session, *, limit: int, offset: int) -> Page[EngineSnapshot]:
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
    found = EngineSnapshot(
        orders=order_summaries(session, page.items),
        inventory=inventory(session),
        payments=[PaymentView.model_validate(p) for p in charges],
        warehouse=[WarehouseView.model_validate(w) for w in records],
    )
    return Page(found, page.next_offset)
