"""The floor: FlowForge's saga as plain Python over its own storage layer, no orchestrator.

The same side effects (`storage.operations`), the same saga log rows (`storage.saga`: each
compensation registered before its step, one event per attempt), the same lease fencing and
the same `FAIL_AT` point as the Prefect engine; compensations run newest first. The saga is
cut into units (`begin`, `run_step`, `unwind`, `compensate`, `finish`) and `drive` hands each
one to a `call(unit, *args)`: `call_directly` runs it here with FlowForge's retry policy,
`bench.dbos_peer` runs it as a DBOS step."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sqlmodel import Session

from storage import operations, saga
from storage.db import session_scope
from storage.errors import DomainRefusal, LeaseLost
from storage.models import Order
from storage.settings import get_settings
from tasks import faults

OWNER = f"bench-floor:{os.getpid()}"
FINAL_ERRORS = (DomainRefusal, LeaseLost)  # never retried, as in tasks/saga_task.py
Call = Callable[..., Any]


def _payment_key(order: Order) -> str:
    return f"{order.order_id}:payment"


def _charge(session: Session, order: Order) -> None:
    payment = operations.charge(
        session,
        order_id=order.order_id,
        idempotency_key=_payment_key(order),
        amount=order.quantity * operations.unit_price(session, product_id=order.product_id),
        payment_method=order.payment_method,
        customer_id=order.customer_id,
    )
    saga.update_order(session, order_id=order.order_id, amount=payment.amount)


@dataclass(frozen=True)
class Action:
    """A step or a compensation: its fault point (which names it) and its side effect."""

    point: str
    effect: Callable[[Session, Order], object]

    @property
    def name(self) -> str:
        return faults.POINTS[self.point]


@dataclass(frozen=True)
class Step:
    do: Action
    undo: Action | None = None
    key: str | None = None  # suffix of the idempotency key both rows carry on the saga log


STEPS = (
    Step(
        Action(
            "inventory-check",
            lambda s, o: operations.check_stock(s, product_id=o.product_id, quantity=o.quantity),
        )
    ),
    Step(
        Action(
            "inventory",
            lambda s, o: operations.reserve_stock(
                s, order_id=o.order_id, product_id=o.product_id, quantity=o.quantity
            ),
        ),
        Action("release", lambda s, o: operations.release_stock(s, order_id=o.order_id)),
        "reservation",
    ),
    Step(
        Action("payment", _charge),
        Action("refund", lambda s, o: operations.refund(s, idempotency_key=_payment_key(o))),
        "payment",
    ),
    Step(
        Action(
            "warehouse",
            lambda s, o: operations.apply_warehouse(
                s, order_id=o.order_id, product_id=o.product_id, quantity=o.quantity
            ),
        ),
        Action("revert", lambda s, o: operations.revert_warehouse(s, order_id=o.order_id)),
        "warehouse",
    ),
)


@contextmanager
def _fenced(order_id: str) -> Iterator[Session]:
    """A transaction that first renews this process's lease on the order."""
    with saga.fenced(
        order_id=order_id, owner=OWNER, lease_seconds=get_settings().lease_seconds
    ) as session:
        yield session


def _attempt(order: Order, action: Action, compensation: bool) -> None:
    """One attempt of `action`, logged on the saga log, failing where `FAIL_AT` says."""
    begin_status, end_status = (
        ("compensating", "compensated") if compensation else ("started", "completed")
    )
    row = {"order_id": order.order_id, "name": action.name}
    with _fenced(order.order_id) as session:
        attempt = saga.begin_attempt(session, **row, event_status=begin_status)
    try:
        with _fenced(order.order_id) as session:
            action.effect(session, order)
        faults.maybe_fail(action.point, attempt, order.order_id)
    except Exception as exc:
        failed = {"event_status": "failed", "message": f"{type(exc).__name__}: {exc}"}
        with session_scope() as session:
            saga.end_attempt(session, **row, attempt=attempt, **failed)
        raise
    with session_scope() as session:
        saga.end_attempt(session, **row, attempt=attempt, event_status=end_status)


def begin(order_id: str) -> None:
    """Take the order's lease."""
    with session_scope() as session:
        if not saga.acquire_lease(
            session, order_id=order_id, owner=OWNER, lease_seconds=get_settings().lease_seconds
        ):
            raise LeaseLost(order_id)


def run_step(order_id: str, position: int) -> None:
    """Mark the order at step `position`, register the step and its compensation, run it."""
    step = STEPS[position]
    key = f"{order_id}:{step.key}" if step.key else None
    with _fenced(order_id) as session:
        order = saga.update_order(
            session, order_id=order_id, status="running", current_step=step.do.name
        )
        if step.undo is not None:
            saga.register_step(
                session,
                order_id=order_id,
                name=step.undo.name,
                kind="compensation",
                position=position,
                idempotency_key=key,
            )
        saga.register_step(
            session,
            order_id=order_id,
            name=step.do.name,
            kind="step",
            position=position,
            idempotency_key=key,
        )
    _attempt(order, step.do, compensation=False)


def unwind(order_id: str, position: int, reason: str, refused: bool) -> None:
    """Record why step `position` failed and start compensating (a refused step changed
    nothing, so its own compensation is skipped)."""
    step = STEPS[position]
    with _fenced(order_id) as session:
        saga.set_step_status(
            session, order_id=order_id, name=step.do.name, status="failed", error=reason
        )
        if refused and step.undo is not None:
            saga.set_step_status(session, order_id=order_id, name=step.undo.name, status="skipped")
        saga.update_order(
            session,
            order_id=order_id,
            status="compensating",
            current_step=None,
            failure_reason=reason,
            failure_point=step.do.name,
        )


def compensate(order_id: str, position: int) -> None:
    """Run the compensation of step `position`."""
    undo = STEPS[position].undo
    assert undo is not None
    with _fenced(order_id) as session:
        order = saga.update_order(session, order_id=order_id, current_step=undo.name)
    _attempt(order, undo, compensation=True)


def finish(order_id: str, status: str, failures: dict[str, str]) -> str:
    """Set the terminal status, mark each compensation that gave up (name: its last error)
    failed on the saga log and in the failure reason, and free the lease."""
    with _fenced(order_id) as session:
        if status == "completed":
            if not saga.complete_unless_cancelled(session, order_id=order_id, owner=OWNER):
                raise RuntimeError(f"order {order_id} was cancelled: the floor does not cancel")
        else:
            values: dict[str, Any] = {"status": status, "current_step": None}
            for name, error in failures.items():
                saga.set_step_status(
                    session, order_id=order_id, name=name, status="failed", error=error
                )
            if failures:
                reason = saga.get_order(session, order_id=order_id).failure_reason
                problems = "; ".join(f"{name}: {error}" for name, error in failures.items())
                values["failure_reason"] = f"{reason} | compensation failed: {problems}"
            saga.update_order(session, order_id=order_id, **values)
        saga.release_lease(session, order_id=order_id, owner=OWNER)
    return status


def retries(unit: Call) -> int:
    """How often FlowForge retries a unit: steps and compensations, nothing else."""
    settings = get_settings()
    return {run_step: settings.step_retries, compensate: settings.compensation_retries}.get(unit, 0)


def call_directly(unit: Call, *args: Any) -> Any:
    """Run `unit` in this process, retried with FlowForge's delays; a refusal is final."""
    delays, last = get_settings().retry_delays, retries(unit)
    for attempt in range(last + 1):
        try:
            return unit(*args)
        except FINAL_ERRORS:
            raise
        except Exception:
            if attempt == last:
                raise
            time.sleep(delays[min(attempt, len(delays) - 1)])


def drive(order_id: str, call: Call = call_directly) -> str:
    """Run a recorded order's saga to its terminal status."""
    call(begin, order_id)
    for position in range(len(STEPS)):
        try:
            call(run_step, order_id, position)
        except LeaseLost:
            raise
        except Exception as exc:
            refused = isinstance(exc, DomainRefusal)
            call(unwind, order_id, position, f"{type(exc).__name__}: {exc}", refused)
            return _compensate(order_id, call, position if refused else position + 1)
    return call(finish, order_id, "completed", {})


def _compensate(order_id: str, call: Call, registered: int) -> str:
    """Undo the first `registered` steps, newest first; every compensation runs."""
    failures = {}
    for position in reversed(range(registered)):
        undo = STEPS[position].undo
        if undo is None:
            continue
        try:
            call(compensate, order_id, position)
        except LeaseLost:
            raise
        except Exception as exc:
            failures[undo.name] = f"{type(exc).__name__}: {exc}"
    return call(finish, order_id, "needs_attention" if failures else "failed", failures)
