"""The audit's invariants: every invariant of the README's Invariants section, checked in SQL.
An empty list means clean. The whole audit, with the reconciliation with the payment provider
when there is one, is payments/audit.py."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import and_, func, or_
from sqlmodel import Session, col, select

from storage.models import (
    SETTLED_STATUSES,
    TERMINAL_STATUSES,
    ChargeStatus,
    Order,
    OrderStatus,
    Payment,
    Product,
    Reservation,
    ReservationStatus,
    WarehouseRecord,
    WarehouseStatus,
    utcnow,
)

QUEUE_GRACE_SECONDS = 60.0  # the sweep's default --stale-after


def broken_invariants(session: Session) -> list[str]:
    """Return one line per violated invariant."""
    return [
        *_stock_is_conserved(session),
        *_completed_orders_are_whole(session),
        *_failed_orders_hold_nothing(session),
        *_nothing_is_duplicated(session),
        *_every_order_is_settled_or_leased(session),
    ]


def _count_by_order(session: Session, model: type, status_column, status: str) -> dict[str, int]:
    rows = session.exec(
        select(model.order_id, func.count()).where(status_column == status).group_by(model.order_id)
    ).all()
    return dict(rows)


def _stock_is_conserved(session: Session) -> list[str]:
    held = dict(
        session.exec(
            select(Reservation.product_id, func.sum(Reservation.quantity))
            .where(Reservation.status == ReservationStatus.HELD)
            .group_by(Reservation.product_id)
        ).all()
    )
    problems = []
    for product in session.exec(select(Product).order_by(Product.product_id)).all():
        pid = product.product_id
        if product.available + product.reserved != product.total_received:
            problems.append(
                f"stock not conserved for {pid}: available {product.available} + reserved "
                f"{product.reserved} != received {product.total_received}"
            )
        if product.available < 0:
            problems.append(f"negative available stock for {pid}: {product.available}")
        if product.reserved != (held.get(pid) or 0):
            problems.append(
                f"reserved stock for {pid} is {product.reserved} but held reservations sum to "
                f"{held.get(pid) or 0}"
            )
    return problems


def _completed_orders_are_whole(session: Session) -> list[str]:
    held = _count_by_order(session, Reservation, Reservation.status, ReservationStatus.HELD)
    applied = _count_by_order(
        session, WarehouseRecord, WarehouseRecord.status, WarehouseStatus.APPLIED
    )
    charged: dict[str, list[int]] = {}
    for order_id, amount in session.exec(
        select(Payment.order_id, Payment.amount).where(Payment.status == ChargeStatus.CHARGED)
    ).all():
        charged.setdefault(order_id, []).append(amount)
    problems = []
    completed = session.exec(
        select(Order, Product.unit_price)
        .join(Product, col(Product.product_id) == col(Order.product_id), isouter=True)
        .where(Order.status == OrderStatus.COMPLETED)
    ).all()
    for order, unit_price in completed:
        oid = order.order_id
        if held.get(oid, 0) != 1:
            problems.append(f"completed order {oid} has {held.get(oid, 0)} held reservations")
        if applied.get(oid, 0) != 1:
            problems.append(
                f"completed order {oid} has {applied.get(oid, 0)} applied warehouse records"
            )
        amounts = charged.get(oid, [])
        expected = order.quantity * (unit_price or 0)
        if amounts != [expected]:
            problems.append(
                f"completed order {oid} has charges {amounts}, expected exactly one of {expected}"
            )
    return problems


def _failed_orders_hold_nothing(session: Session) -> list[str]:
    checks = (
        ("held reservation", Reservation, Reservation.status, ReservationStatus.HELD),
        ("charged payment", Payment, Payment.status, ChargeStatus.CHARGED),
        (
            "applied warehouse record",
            WarehouseRecord,
            WarehouseRecord.status,
            WarehouseStatus.APPLIED,
        ),
    )
    problems = []
    for label, model, status_column, status in checks:
        rows = session.exec(
            select(Order.order_id, Order.status)
            .join(model, col(model.order_id) == col(Order.order_id))
            .where(col(Order.status).in_(sorted(SETTLED_STATUSES)), status_column == status)
        ).all()
        problems += [f"{state} order {oid} still has a {label}" for oid, state in rows]
    return problems


def _nothing_is_duplicated(session: Session) -> list[str]:
    checks = (
        (
            "idempotency key {} is charged {} times",
            Payment.idempotency_key,
            Payment.status == ChargeStatus.CHARGED,
        ),
        (
            "order {} has {} charged payments",
            Payment.order_id,
            Payment.status == ChargeStatus.CHARGED,
        ),
        ("order {} has {} reservations", Reservation.order_id, True),
        ("order {} has {} warehouse records", WarehouseRecord.order_id, True),
    )
    problems = []
    for template, column, condition in checks:
        rows = session.exec(
            select(column, func.count()).where(condition).group_by(column).having(func.count() > 1)
        ).all()
        problems += [template.format(key, count) for key, count in rows]
    return problems


def _every_order_is_settled_or_leased(session: Session) -> list[str]:
    """Stuck orders: in progress under an expired lease (whoever drove it died or stalled);
    or waiting, unheld, longer than `QUEUE_GRACE_SECONDS` since their last change (no intake
    is taking orders) — an order in progress, or a completed one whose cancellation was
    requested. An order that waits less is queued, not stuck."""
    now = utcnow()
    waited = and_(
        col(Order.lease_owner).is_(None),
        col(Order.updated_at) < now - timedelta(seconds=QUEUE_GRACE_SECONDS),
    )
    rows = session.exec(
        select(Order.order_id, Order.status, Order.lease_expires_at, Order.updated_at).where(
            or_(
                and_(
                    col(Order.status).not_in(sorted(TERMINAL_STATUSES)),
                    or_(col(Order.lease_expires_at) < now, waited),
                ),
                and_(
                    col(Order.status) == OrderStatus.COMPLETED, col(Order.cancel_requested), waited
                ),
            )
        )
    ).all()
    return [_stuck(*row) for row in rows]


def _stuck(order_id: str, status: str, expires: datetime | None, since: datetime) -> str:
    if status == OrderStatus.COMPLETED:
        return f"order {order_id} is completed; its cancellation ({since:%F %T}) never ran"
    why = f"expired {expires:%F %T}" if expires else f"waiting since {since:%F %T}"
    hint = "" if expires else ": is an intake running?"
    return f"order {order_id} is {status} without a live lease ({why}{hint})"
