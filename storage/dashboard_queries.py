"""Aggregate read-only queries for the dashboard: counted, summed and paged in SQL, so a page
stays fast on tens of thousands of orders."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, String, cast, func, or_
from sqlmodel import Session, col, select

from storage.models import (
    ChargeRequest,
    ChargeStatus,
    Order,
    OrderStatus,
    Payment,
    Reservation,
    SagaStep,
    StepKind,
    WarehouseRecord,
)
from storage.views import (
    ChargeRequestView,
    PaymentView,
    ReservationView,
    WarehouseDetail,
    cart_text,
)


@dataclass(frozen=True)
class OrderFilter:
    """Which orders the orders table shows."""

    statuses: Sequence[str] = ()
    products: Sequence[str] = ()
    search: str = ""

    def conditions(self) -> list[ColumnElement[bool]]:
        """The WHERE clauses of this filter."""
        conditions = []
        if self.statuses:
            conditions.append(col(Order.status).in_(list(self.statuses)))
        if self.products:  # an order with a line of any of them (ids are quoted in its JSON)
            lines = cast(Order.lines, String)
            conditions.append(or_(*(lines.contains(f'"{p}"') for p in self.products)))
        if self.search.strip():
            conditions.append(col(Order.order_id).contains(self.search.strip()))
        return conditions


def seconds_between(session: Session, start: Any, end: Any) -> ColumnElement[float]:
    """`end - start` in seconds, in the dialect of the session's database."""
    if session.get_bind().dialect.name == "postgresql":
        return func.extract("epoch", end - start)
    return (func.julianday(end) - func.julianday(start)) * 86400.0


def order_duration(session: Session) -> ColumnElement[float]:
    """Seconds from an order's creation to its end (NULL while it is in progress)."""
    return seconds_between(session, Order.created_at, Order.finished_at)


def status_counts(session: Session) -> dict[str, int]:
    """Number of orders per status."""
    rows = session.exec(select(Order.status, func.count()).group_by(Order.status)).all()
    return dict(rows)


def latency_percentiles(
    session: Session, quantiles: Sequence[float] = (0.5, 0.95)
) -> dict[float, float | None]:
    """Nearest-rank percentiles of finished orders' latency in seconds (None without any)."""
    duration = order_duration(session)
    finished = col(Order.finished_at).is_not(None)
    count = session.exec(select(func.count()).select_from(Order).where(finished)).one()
    if not count:
        return dict.fromkeys(quantiles)
    result: dict[float, float | None] = {}
    for quantile in quantiles:
        rank = min(count - 1, max(0, math.ceil(quantile * count) - 1))
        value = session.exec(
            select(duration).where(finished).order_by(duration).offset(rank).limit(1)
        ).one()
        result[quantile] = float(value)
    return result


@dataclass(frozen=True)
class OrderPage:
    """One page of the orders table."""

    rows: list[dict[str, Any]]
    total: int
    page: int
    pages: int


def order_page(
    session: Session, order_filter: OrderFilter, *, page: int, page_size: int
) -> OrderPage:
    """Page `page` (from 1, clamped to the last) of the matching orders, newest first."""
    conditions = order_filter.conditions()
    total = session.exec(select(func.count()).select_from(Order).where(*conditions)).one()
    pages = max(1, math.ceil(total / page_size))
    page = min(max(page, 1), pages)
    found = session.exec(
        select(Order, order_duration(session))
        .where(*conditions)
        .order_by(col(Order.created_at).desc(), col(Order.order_id).desc())
        .offset((page - 1) * page_size)
        .limit(page_size)
    ).all()
    rows = [
        {
            "order_id": order.order_id,
            "lines": cart_text(order.lines),
            "customer_id": order.customer_id,
            "status": order.status,
            "created_at": order.created_at,
            "duration_s": duration,
            "failure_reason": order.failure_reason,
        }
        for order, duration in found
    ]
    return OrderPage(rows, total, page, pages)


def failure_points(session: Session) -> dict[str, int]:
    """Unsuccessful orders per step where their forward path stopped."""
    rows = session.exec(
        select(Order.failure_point, func.count())
        .where(col(Order.failure_point).is_not(None))
        .group_by(Order.failure_point)
        .order_by(func.count().desc())
    ).all()
    return dict(rows)


def compensation_runs(session: Session) -> list[dict[str, Any]]:
    """Compensations that ran at least once: per name and final status, orders and attempts."""
    rows = session.exec(
        select(SagaStep.name, SagaStep.status, func.count(), func.sum(SagaStep.attempts))
        .where(SagaStep.kind == StepKind.COMPENSATION, SagaStep.attempts > 0)
        .group_by(SagaStep.name, SagaStep.status)
        .order_by(SagaStep.name, SagaStep.status)
    ).all()
    return [
        {"compensation": name, "status": status, "orders": orders, "attempts": attempts}
        for name, status, orders, attempts in rows
    ]


def money(session: Session) -> dict[str, int]:
    """Cents charged (ever), refunded, and the net kept."""
    rows = dict(
        session.exec(
            select(Payment.status, func.coalesce(func.sum(Payment.amount), 0)).group_by(
                Payment.status
            )
        ).all()
    )
    charged = sum(rows.values())
    refunded = rows.get(ChargeStatus.REFUNDED, 0)
    return {"charged": charged, "refunded": refunded, "net": charged - refunded}


def recent_payments(session: Session, *, limit: int) -> list[dict[str, Any]]:
    """The newest payments."""
    rows = session.exec(select(Payment).order_by(col(Payment.created_at).desc()).limit(limit)).all()
    return [PaymentView.model_validate(p).model_dump(mode="json") for p in rows]


def attention_queue(session: Session, *, limit: int) -> tuple[list[dict[str, Any]], int]:
    """The newest `needs_attention` orders with their error, and how many there are in all."""
    waiting = Order.status == OrderStatus.NEEDS_ATTENTION
    total = session.exec(select(func.count()).select_from(Order).where(waiting)).one()
    rows = session.exec(
        select(Order).where(waiting).order_by(col(Order.created_at).desc()).limit(limit)
    ).all()
    queue = [
        {
            "order_id": order.order_id,
            "lines": cart_text(order.lines),
            "failure_reason": order.failure_reason,
            "updated_at": order.updated_at,
        }
        for order in rows
    ]
    return queue, total


def order_records(session: Session, *, order_id: str) -> dict[str, list[dict[str, Any]]]:
    """The order's reservation, payments, charge requests to the HTTP payment provider and
    warehouse record."""
    reservations = session.exec(select(Reservation).where(Reservation.order_id == order_id)).all()
    payments = session.exec(select(Payment).where(Payment.order_id == order_id)).all()
    requests = session.exec(select(ChargeRequest).where(ChargeRequest.order_id == order_id)).all()
    records = session.exec(
        select(WarehouseRecord).where(WarehouseRecord.order_id == order_id)
    ).all()
    return {
        "reservation": [
            ReservationView.model_validate(r).model_dump(mode="json") for r in reservations
        ],
        "payment": [PaymentView.model_validate(p).model_dump(mode="json") for p in payments],
        "charge_request": [
            ChargeRequestView.model_validate(r).model_dump(mode="json") for r in requests
        ],
        "warehouse": [
            WarehouseDetail.model_validate(w).model_dump(mode="json", exclude={"order_id"})
            for w in records
        ],
    }
