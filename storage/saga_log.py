"""The saga log: orders, their leases, and each order's steps, compensations and events."""

from __future__ import annotations

from collections.abc import Collection, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from sqlalchemy import ColumnElement, and_, or_, update
from sqlmodel import Session, col, select

from storage import operations
from storage.db import insert_once, session_scope
from storage.errors import IdConflict, LeaseLost, OrderDiffers, OrderNotFound
from storage.models import (
    ACTIVE_STATUSES,
    TERMINAL_STATUSES,
    CompensationStatus,
    EventStatus,
    Order,
    OrderCreate,
    OrderLine,
    OrderStatus,
    SagaEvent,
    SagaStep,
    StepKind,
    StepStatus,
    utcnow,
)

ORDER_DETAILS = ("customer_id", "payment_method")  # besides the lines


def create_order(
    session: Session,
    new: OrderCreate,
    *,
    lease_owner: str | None = None,
    lease_seconds: float = 0,
) -> tuple[Order, bool]:
    """Record a pending order (`new` with its order id; its workflow id defaults to
    `order-<order id>`), leased to `lease_owner` when given (so no intake claims it before
    its recorder runs it). Returns (order, created): an order recorded before under the same
    ids and with the same details is returned unchanged (a safe retry); `IdConflict` when
    either id names another order, `OrderDiffers` when the details differ."""
    if new.order_id is None:
        raise ValueError("create_order needs the order's id")
    order_id, workflow_id = new.order_id, new.workflow_id or f"order-{new.order_id}"
    lines = tuple(new.lines)
    order = Order(
        lines=lines,
        product_id=lines[0].product_id,
        quantity=sum(line.quantity for line in lines),
        customer_id=new.customer_id,
        payment_method=new.payment_method,
        order_id=order_id,
        workflow_id=workflow_id,
        lease_owner=lease_owner,
        lease_expires_at=utcnow() + timedelta(seconds=lease_seconds) if lease_owner else None,
        amount=_quoted_total(session, lines),
    )
    existing = _order_with_either_id(session, order_id, workflow_id)
    if existing is None and insert_once(session, order):
        return order, True
    existing = existing or _order_with_either_id(session, order_id, workflow_id)  # raced
    if (existing.order_id, existing.workflow_id) != (order_id, workflow_id):
        taken = order_id if order_id in (existing.order_id, existing.workflow_id) else workflow_id
        raise IdConflict(taken, existing.order_id)
    differences = _line_differences(existing.lines, order.lines) | {
        field: (getattr(existing, field), getattr(order, field))
        for field in ORDER_DETAILS
        if getattr(existing, field) != getattr(order, field)
    }
    if differences:
        raise OrderDiffers(order_id, differences)
    return existing, False


def _line_differences(
    recorded: tuple[OrderLine, ...], given: tuple[OrderLine, ...]
) -> dict[str, tuple[object, object]]:
    """How two carts differ, by field: `product_id`/`quantity` for one line each, else
    `line N product_id`/`line N quantity`, or the count of lines."""
    if len(recorded) != len(given):
        return {"lines": (len(recorded), len(given))}
    differences = {}
    for number, (before, now) in enumerate(zip(recorded, given, strict=True), start=1):
        prefix = "" if len(given) == 1 else f"line {number} "
        for field in ("product_id", "quantity"):
            if getattr(before, field) != getattr(now, field):
                differences[prefix + field] = (getattr(before, field), getattr(now, field))
    return differences


def _quoted_total(session: Session, lines: tuple[OrderLine, ...]) -> int:
    """The cart's total at today's prices; a line of an unknown product counts nothing (the
    saga refuses it)."""
    return operations.priced(operations.products_of(session, lines=lines), lines)


def _order_with_either_id(session: Session, order_id: str, workflow_id: str) -> Order | None:
    """The order already using either id as its order id or its workflow id, if any: ids
    are looked up in both columns, so no id may ever name two orders."""
    ids = sorted({order_id, workflow_id})
    return session.exec(
        select(Order).where(or_(col(Order.order_id).in_(ids), col(Order.workflow_id).in_(ids)))
    ).first()


def get_order(session: Session, *, order_id: str) -> Order:
    order = session.get(Order, order_id)
    if order is None:
        raise OrderNotFound(order_id)
    return order


def find_order(session: Session, *, order_or_workflow_id: str) -> Order | None:
    """Look an order up by its order id or its workflow id."""
    order = session.get(Order, order_or_workflow_id)
    if order is None:
        order = session.exec(select(Order).where(Order.workflow_id == order_or_workflow_id)).first()
    return order


def order_statuses(session: Session, *, order_ids: Collection[str]) -> dict[str, str]:
    """The status of each of these orders that exists, in one query."""
    rows = session.exec(
        select(Order.order_id, Order.status).where(col(Order.order_id).in_(order_ids))
    )
    return dict(rows.all())


def list_orders(session: Session, *, limit: int = 100, offset: int = 0) -> list[Order]:
    statement = select(Order).order_by(col(Order.created_at).desc()).offset(offset).limit(limit)
    return list(session.exec(statement).all())


def acquire_lease(
    session: Session,
    *,
    order_id: str,
    owner: str,
    lease_seconds: float,
    statuses: frozenset[str] | None = None,
    cancel_requested: bool | None = None,
) -> bool:
    """Take the order's lease if it is free, already ours, or expired (a conditional update).

    Only orders in `statuses` (default: every non-terminal status) can be leased, and, when
    `cancel_requested` is given, only orders whose cancel flag has that value: the condition
    and the lease are one statement, so no other driver can change the order in between.
    """
    now = utcnow()
    allowed = statuses or ACTIVE_STATUSES
    flag = [] if cancel_requested is None else [col(Order.cancel_requested) == cancel_requested]
    result = session.execute(
        update(Order)
        .where(
            col(Order.order_id) == order_id,
            col(Order.status).in_(sorted(allowed)),
            *flag,
            or_(
                col(Order.lease_owner).is_(None),
                col(Order.lease_owner) == owner,
                col(Order.lease_expires_at) < now,
            ),
        )
        .values(
            lease_owner=owner,
            lease_expires_at=now + timedelta(seconds=lease_seconds),
            updated_at=now,
        )
    )
    return result.rowcount == 1


def _unclaimed(now: datetime, owner: str | None = None) -> ColumnElement[bool]:
    """Orders with work to do that nobody holds, or whose holder's lease expired (it died,
    or is so slow that it is fenced out): the intake's queue. Recorded orders, orders in
    progress (their driver died or let go mid-way, or a retry reopened their compensations),
    and completed orders with a cancellation to carry out. An expired lease of `owner`
    itself is not taken again: one of its own threads may still be driving the order."""
    expired = col(Order.lease_expires_at) < now
    if owner is not None:
        expired = and_(expired, col(Order.lease_owner) != owner)
    takeable = or_(col(Order.lease_owner).is_(None), expired)
    return and_(
        takeable,
        or_(
            col(Order.status).in_(
                [OrderStatus.PENDING, OrderStatus.RUNNING, OrderStatus.COMPENSATING]
            ),
            and_(col(Order.status) == OrderStatus.COMPLETED, col(Order.cancel_requested)),
        ),
    )


def pending_unclaimed(session: Session, *, owner: str | None = None) -> bool:
    """Whether any order waits for an intake (a cheap read before claiming)."""
    query = select(Order.order_id).where(_unclaimed(utcnow(), owner)).limit(1)
    return session.exec(query).first() is not None


class Claim(NamedTuple):
    """An order an intake claimed; `abandoned_run` is the Prefect task run of the driver it
    took the order over from (any run that started it, even one killed before its first
    step: the order is still pending then), to be marked crashed unless it ended."""

    order_id: str
    abandoned_run: str | None


def claim_pending(session: Session, *, owner: str, limit: int, lease_seconds: float) -> list[Claim]:
    """Lease up to `limit` orders of the intake's queue, oldest first, to `owner`. One
    transaction, so two intakes never claim the same order (SKIP LOCKED on PostgreSQL); an
    order whose lease expired is taken over, and its old holder can no longer write."""
    now = utcnow()
    claimable = _unclaimed(now, owner)
    candidates = list(
        session.exec(
            select(Order.order_id)
            .where(claimable)
            .order_by(col(Order.created_at))
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
    )
    if not candidates:
        return []
    claimed = session.execute(
        update(Order)
        .where(col(Order.order_id).in_(candidates), claimable)
        .values(
            lease_owner=owner,
            lease_expires_at=now + timedelta(seconds=lease_seconds),
            updated_at=now,
        )
        .returning(col(Order.order_id), col(Order.task_run_id))
    )
    taken = {order_id: run for order_id, run in claimed}
    return [Claim(order_id, taken[order_id]) for order_id in candidates if order_id in taken]


def renew_lease(session: Session, *, order_id: str, owner: str, lease_seconds: float) -> bool:
    """Extend our lease. False when another owner took it over."""
    now = utcnow()
    result = session.execute(
        update(Order)
        .where(col(Order.order_id) == order_id, col(Order.lease_owner) == owner)
        .values(lease_expires_at=now + timedelta(seconds=lease_seconds), updated_at=now)
    )
    return result.rowcount == 1


def renew_leases(
    session: Session, *, order_ids: list[str], owner: str, lease_seconds: float
) -> int:
    """Extend `owner`'s leases on these orders in one statement (those another owner took
    over are left alone); how many were ours."""
    now = utcnow()
    result = session.execute(
        update(Order)
        .where(col(Order.order_id).in_(order_ids), col(Order.lease_owner) == owner)
        .values(lease_expires_at=now + timedelta(seconds=lease_seconds), updated_at=now)
    )
    return result.rowcount


@contextmanager
def fenced(*, order_id: str, owner: str, lease_seconds: float) -> Iterator[Session]:
    """A transaction that first renews `owner`'s lease on the order (raising `LeaseLost` if
    someone else holds it), so whatever it writes is fenced by the lease."""
    with session_scope() as session:
        if not renew_lease(session, order_id=order_id, owner=owner, lease_seconds=lease_seconds):
            raise LeaseLost(order_id)
        yield session


def release_lease(session: Session, *, order_id: str, owner: str) -> None:
    session.execute(
        update(Order)
        .where(col(Order.order_id) == order_id, col(Order.lease_owner) == owner)
        .values(lease_owner=None, lease_expires_at=None)
    )


def update_order(session: Session, *, order_id: str, **values: Any) -> Order:
    """Set fields of an order; entering a terminal status stamps `finished_at`."""
    order = get_order(session, order_id=order_id)
    for field, value in values.items():
        setattr(order, field, value)
    order.updated_at = utcnow()
    if order.status in TERMINAL_STATUSES and "status" in values:
        order.finished_at = order.updated_at
    session.add(order)
    session.flush()
    return order


def complete_unless_cancelled(session: Session, *, order_id: str, owner: str) -> bool:
    """Mark our order completed, atomically refusing when a cancel was requested meanwhile."""
    now = utcnow()
    result = session.execute(
        update(Order)
        .where(
            col(Order.order_id) == order_id,
            col(Order.lease_owner) == owner,
            col(Order.cancel_requested).is_(False),
        )
        .values(status=OrderStatus.COMPLETED, current_step=None, updated_at=now, finished_at=now)
    )
    return result.rowcount == 1


def request_cancel(session: Session, *, order_id: str) -> bool:
    """Flag the order for cancellation; False when it was already flagged."""
    result = session.execute(
        update(Order)
        .where(col(Order.order_id) == order_id, col(Order.cancel_requested).is_(False))
        .values(cancel_requested=True, updated_at=utcnow())
    )
    return result.rowcount == 1


def reopen_compensations(session: Session, *, order_id: str) -> bool:
    """Put a `needs_attention` order that nobody holds back to `compensating` so that its
    pending compensations run again (by the intake, or whoever takes it); False otherwise."""
    now = utcnow()
    result = session.execute(
        update(Order)
        .where(
            col(Order.order_id) == order_id,
            col(Order.status) == OrderStatus.NEEDS_ATTENTION,
            or_(col(Order.lease_owner).is_(None), col(Order.lease_expires_at) < now),
        )
        .values(
            status=OrderStatus.COMPENSATING, lease_owner=None, lease_expires_at=None, updated_at=now
        )
    )
    return result.rowcount == 1


def register_step(
    session: Session,
    *,
    order_id: str,
    name: str,
    kind: str,
    position: int,
    idempotency_key: str | None = None,
) -> SagaStep:
    """Put a step or compensation on the order's saga log once; later calls return it."""
    row = saga_step(session, order_id=order_id, name=name)
    if row is None:
        row = SagaStep(
            order_id=order_id,
            name=name,
            kind=kind,
            position=position,
            status=StepStatus.PENDING if kind == StepKind.STEP else CompensationStatus.REGISTERED,
            idempotency_key=idempotency_key,
        )
        if not insert_once(session, row):
            row = saga_step(session, order_id=order_id, name=name)
    return row


def saga_step(session: Session, *, order_id: str, name: str) -> SagaStep | None:
    return session.exec(
        select(SagaStep).where(SagaStep.order_id == order_id, SagaStep.name == name)
    ).first()


def saga_steps(session: Session, *, order_id: str) -> list[SagaStep]:
    return list(
        session.exec(
            select(SagaStep)
            .where(SagaStep.order_id == order_id)
            .order_by(col(SagaStep.position), col(SagaStep.kind).desc())
        ).all()
    )


def set_step_status(
    session: Session, *, order_id: str, name: str, status: str, error: str | None = None
) -> None:
    values: dict[str, Any] = {"status": status}
    if error is not None:
        values["error"] = error
    session.execute(
        update(SagaStep)
        .where(col(SagaStep.order_id) == order_id, col(SagaStep.name) == name)
        .values(**values)
    )


def begin_attempt(session: Session, *, order_id: str, name: str, event_status: str) -> int:
    """Count a new attempt of a registered step or compensation and log it; returns its number."""
    row = saga_step(session, order_id=order_id, name=name)
    if row is None:
        raise LookupError(f"{name} is not on the saga log of order {order_id}")
    now = utcnow()
    row.attempts += 1
    row.status = (
        StepStatus.RUNNING if row.kind == StepKind.STEP else CompensationStatus.COMPENSATING
    )
    row.started_at = row.started_at or now
    row.finished_at = None
    session.add(row)
    session.add(
        SagaEvent(
            order_id=order_id, step=name, status=event_status, attempt=row.attempts, timestamp=now
        )
    )
    return row.attempts


def end_attempt(
    session: Session,
    *,
    order_id: str,
    name: str,
    attempt: int,
    event_status: str,
    message: str = "",
) -> None:
    """Log how an attempt ended (`completed`, `compensated` or `failed`)."""
    now = utcnow()
    values: dict[str, Any] = {"finished_at": now}
    if event_status == EventStatus.FAILED:
        values["error"] = message
    else:
        values["status"] = event_status
    session.execute(
        update(SagaStep)
        .where(col(SagaStep.order_id) == order_id, col(SagaStep.name) == name)
        .values(**values)
    )
    session.add(
        SagaEvent(
            order_id=order_id,
            step=name,
            status=event_status,
            attempt=attempt,
            message=message,
            timestamp=now,
        )
    )


def events(session: Session, *, order_id: str) -> list[SagaEvent]:
    return list(
        session.exec(
            select(SagaEvent).where(SagaEvent.order_id == order_id).order_by(col(SagaEvent.id))
        ).all()
    )


def stale_orders(
    session: Session, *, stale_after: float, now: datetime | None = None
) -> list[Order]:
    """Non-terminal orders whose lease expired more than `stale_after` seconds ago (or never
    had one and were created that long ago)."""
    cutoff = (now or utcnow()) - timedelta(seconds=stale_after)
    statement = select(Order).where(
        col(Order.status).not_in(sorted(TERMINAL_STATUSES)),
        or_(
            col(Order.lease_expires_at) < cutoff,
            (col(Order.lease_expires_at).is_(None)) & (col(Order.updated_at) < cutoff),
        ),
    )
    return list(session.exec(statement.order_by(col(Order.created_at))).all())
