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
LinesByOrder = dict[str, dict[str, int]]  # order id -> product id -> units


def broken_invariants(session: Session) -> list[str]:
    """Return one line per violated invariant."""
    return [
        *_stock_is_conserved(session),
        *_completed_orders_are_whole(session),
        *_failed_orders_hold_nothing(session),
        *_nothing_is_duplicated(session),
        *_every_order_is_settled_or_leased(session),
    ]


def _lines_by_order(session: Session, model: type, status_column, status: str) -> LinesByOrder:
    """{order: {product: units}} of the rows of `model` (reservations or warehouse records)
    in `status`."""
    found: LinesByOrder = {}
    rows = session.exec(
        select(model.order_id, model.product_id, model.quantity).where(status_column == status)
    ).all()
    for order_id, product_id, quantity in rows:
        found.setdefault(order_id, {})[product_id] = quantity
    return found


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
    """A completed order holds exactly its lines (held, shipped) and one charge of its
    cart's total."""
    held = _lines_by_order(session, Reservation, Reservation.status, ReservationStatus.HELD)
    shipped = _lines_by_order(
        session, WarehouseRecord, WarehouseRecord.status, WarehouseStatus.APPLIED
    )
    charged: dict[str, list[int]] = {}
    for order_id, amount in session.exec(
        select(Payment.order_id, Payment.amount).where(Payment.status == ChargeStatus.CHARGED)
    ).all():
        charged.setdefault(order_id, []).append(amount)
    prices = dict(session.exec(select(Product.product_id, Product.unit_price)).all())
    problems = []
    completed = session.exec(select(Order).where(Order.status == OrderStatus.COMPLETED)).all()
    for order in completed:
        oid = order.order_id
        lines = {line.product_id: line.quantity for line in order.lines}
        for label, found in (("held reservations", held), ("applied warehouse records", shipped)):
            if found.get(oid, {}) != lines:
                problems.append(
                    f"completed order {oid} has {label} {_cart(found.get(oid, {}))}, "
                    f"expected its lines {_cart(lines)}"
                )
        amounts = charged.get(oid, [])
        expected = sum(line.quantity * prices.get(line.product_id, 0) for line in order.lines)
        if amounts != [expected]:
            problems.append(
                f"completed order {oid} has charges {amounts}, expected exactly one of {expected}"
            )
    return problems


def _cart(lines: dict[str, int]) -> str:
    return "[" + ", ".join(f"{q} x {p}" for p, q in sorted(lines.items())) + "]"


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
            .distinct()
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
    )
    problems = []
    for template, column, condition in checks:
        rows = session.exec(
            select(column, func.count()).where(condition).group_by(column).having(func.count() > 1)
        ).all()
        problems += [template.format(key, count) for key, count in rows]
    for label, model in (("reservations", Reservation), ("warehouse records", WarehouseRecord)):
        rows = session.exec(
            select(model.order_id, model.product_id, func.count())
            .group_by(model.order_id, model.product_id)
            .having(func.count() > 1)
        ).all()
        problems += [f"order {oid} has {n} {label} of {pid}" for oid, pid, n in rows]
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
