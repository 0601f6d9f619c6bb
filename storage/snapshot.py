"""The engine snapshot and the per-order summary, as plain JSON-ready dicts."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlmodel import Session, col, select

from storage import saga
from storage.models import Order, Payment, Product, SagaEvent, WarehouseRecord


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
    steps = saga.saga_steps(session, order_id=order.order_id)
    order_events = saga.events(session, order_id=order.order_id)
    compensations: list[str] = []
    for event in order_events:
        if event.status == "compensating" and event.step not in compensations:
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
        "steps_completed": [s.name for s in steps if s.kind == "step" and s.status == "completed"],
        "compensations": compensations,
        "compensation_triggered": bool(compensations),
        "failure_reason": order.failure_reason,
        "failure_point": order.failure_point,
        "cancel_requested": order.cancel_requested,
        "flow_run_id": order.flow_run_id,
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


def inventory(session: Session) -> list[dict[str, Any]]:
    return [
        {
            "product_id": p.product_id,
            "name": p.name,
            "unit_price": p.unit_price,
            "available": p.available,
            "reserved": p.reserved,
            "total_received": p.total_received,
        }
        for p in session.exec(select(Product).order_by(Product.product_id)).all()
    ]


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


def warehouse(session: Session) -> list[dict[str, Any]]:
    rows = session.exec(select(WarehouseRecord).order_by(col(WarehouseRecord.id))).all()
    return [
        {
            "order_id": w.order_id,
            "product_id": w.product_id,
            "quantity": w.quantity,
            "status": w.status,
            "created_at": iso(w.created_at),
        }
        for w in rows
    ]


def snapshot(session: Session) -> dict[str, Any]:
    orders = session.exec(select(Order).order_by(col(Order.created_at))).all()
    return {
        "orders": [order_summary(session, o, with_events=False) for o in orders],
        "inventory": inventory(session),
        "payments": payments(session),
        "warehouse": warehouse(session),
    }
