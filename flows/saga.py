"""The saga engine shared by every flow: run the steps forward, registering each compensation
on the durable rollback stack (the saga log) BEFORE its side effect; on failure, unwind the
stack in reverse. Holds no SQL: it calls storage functions and tasks."""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session

from storage import saga_log
from storage.db import session_scope
from storage.errors import DomainRefusal, LeaseLost, StorageUnavailable
from storage.models import (
    ACTIVE_STATUSES,
    CompensationStatus,
    Order,
    OrderStatus,
    SagaStep,
    StepKind,
    StepStatus,
)
from storage.settings import get_settings
from tasks import steps
from tasks.saga_task import with_current_retries
from tasks.steps import Step

CANCELLED_REASON = "cancelled by request"
logger = logging.getLogger(__name__)
# settled orders that a requested cancellation still unwinds
UNWOUND_ON_CANCEL = frozenset({OrderStatus.COMPLETED, OrderStatus.NEEDS_ATTENTION})


# a compensation in one of these statuses still has to run
STILL_TO_RUN = frozenset(
    {CompensationStatus.REGISTERED, CompensationStatus.COMPENSATING, CompensationStatus.FAILED}
)


class StopForward(Exception):
    """The forward path ends here: a step failed or a cancel was requested."""

    def __init__(self, reason: str, point: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.point = point


@dataclass
class SagaRun:
    """One process driving one order while it holds the order's lease."""

    order_id: str
    owner: str

    def _order(self) -> Order:
        with session_scope() as session:
            return saga_log.get_order(session, order_id=self.order_id)

    def _fenced(self) -> AbstractContextManager[Session]:
        """A transaction that first renews our lease (`LeaseLost` if someone took it over)."""
        return saga_log.fenced(
            order_id=self.order_id, owner=self.owner, lease_seconds=get_settings().lease_seconds
        )

    def update(self, **values: Any) -> Order:
        """Set fields of our order in a fenced transaction."""
        with self._fenced() as session:
            return saga_log.update_order(session, order_id=self.order_id, **values)

    def enter(self, position: int, step: Step) -> tuple[Order, SagaStep | None]:
        """Mark the order at `step` and put the step on the rollback stack, in one
        transaction; no step row when a cancel was requested."""
        with self._fenced() as session:
            order = saga_log.update_order(
                session, order_id=self.order_id, status=OrderStatus.RUNNING, current_step=step.name
            )
            if order.cancel_requested:
                return order, None
            return order, self._register(session, position, step)

    def _register(self, session: Session, position: int, step: Step) -> SagaStep:
        """Register the step's compensation, then the step, both under the step's key."""
        key = step.key(self.order_id) if step.key else None
        if step.undo is not None:
            saga_log.register_step(
                session,
                order_id=self.order_id,
                name=step.undo.name,
                kind=StepKind.COMPENSATION,
                position=position,
                idempotency_key=key,
            )
        return saga_log.register_step(
            session,
            order_id=self.order_id,
            name=step.name,
            kind=StepKind.STEP,
            position=position,
            idempotency_key=key,
        )

    def forward(self) -> None:
        """Run every step not yet completed; raise `StopForward` when the saga must unwind."""
        for position, step in enumerate(steps.STEPS):
            order, row = self.enter(position, step)
            if self._already_done(step, row):
                continue
            with self._stop_on_failure(step):
                self._run(step, order)

    def _already_done(self, step: Step, row: SagaStep | None) -> bool:
        """Whether the step completed before; `StopForward` if it failed or a cancel came."""
        if row is None:
            raise StopForward(CANCELLED_REASON)
        if row.status == StepStatus.FAILED:
            raise StopForward(row.error or f"{step.name} failed", step.name)
        return row.status == StepStatus.COMPLETED

    def _run(self, step: Step, order: Order) -> None:
        """Call the step's task with the order's arguments and the retries set now."""
        with_current_retries(step.task)(self.order_id, self.owner, **step.args(order))

    @contextmanager
    def _stop_on_failure(self, step: Step) -> Iterator[None]:
        """Turn the step's failure into `StopForward`; a lost lease passes through."""
        try:
            yield
        except LeaseLost:
            raise
        except DomainRefusal as exc:
            self._skip_undo(step)
            raise StopForward(str(exc), step.name) from exc
        except Exception as exc:
            raise StopForward(f"{type(exc).__name__}: {exc}", step.name) from exc

    def _skip_undo(self, step: Step) -> None:
        """A refused step changed nothing: its compensation, if any, is skipped."""
        if step.undo is None:
            return
        with session_scope() as session:
            saga_log.set_step_status(
                session,
                order_id=self.order_id,
                name=step.undo.name,
                status=CompensationStatus.SKIPPED,
            )

    def compensate(self) -> str:
        """Unwind the rollback stack in reverse; every compensation runs even if one fails."""
        self.update(status=OrderStatus.COMPENSATING, current_step=None)
        outcomes = [self._undo(row) for row in self._to_undo()]
        return self._unwound([error for error in outcomes if error])

    def _to_undo(self) -> list[SagaStep]:
        """The compensations still to run, newest first."""
        with session_scope() as session:
            rows = saga_log.saga_steps(session, order_id=self.order_id)
        return [
            row
            for row in reversed(rows)
            if row.kind == StepKind.COMPENSATION and row.status in STILL_TO_RUN
        ]

    def _undo(self, row: SagaStep) -> str | None:
        """Run one compensation; its error, or None when it succeeded."""
        self.update(current_step=row.name)
        try:
            with_current_retries(steps.compensations()[row.name])(self.order_id, self.owner)
        except LeaseLost:
            raise
        except Exception as exc:
            return f"{row.name}: {type(exc).__name__}: {exc}"
        return None

    def _unwound(self, errors: list[str]) -> str:
        """Set the unwound order's status: needs_attention when a compensation failed, else
        cancelled or failed. The reason keeps the order's own failure and names only this
        unwinding's failed compensations (a retry drops those of the unwinding before it)."""
        order = self._order()
        cause = (order.failure_reason or "").split("compensation failed: ")[0].rstrip(" |")
        if errors:
            status = OrderStatus.NEEDS_ATTENTION
            reason = cause + " | compensation failed: " + "; ".join(errors)
            self.update(status=status, current_step=None, failure_reason=reason.lstrip(" |"))
        else:
            status = OrderStatus.CANCELLED if order.cancel_requested else OrderStatus.FAILED
            self.update(status=status, current_step=None, failure_reason=cause or None)
        return status

    def drive(self) -> str:
        """Take the order from wherever its log says it is to a terminal status."""
        order = self._order()
        if order.status in {OrderStatus.PENDING, OrderStatus.RUNNING}:
            try:
                self.forward()
            except StopForward as stop:
                self.update(failure_reason=stop.reason, failure_point=stop.point)
            else:
                if self._complete():
                    return OrderStatus.COMPLETED
                self.update(failure_reason=CANCELLED_REASON)
        return self.compensate()

    def _complete(self) -> bool:
        """Mark the order completed unless a cancel arrived during the last step."""
        with self._fenced() as session:
            return saga_log.complete_unless_cancelled(
                session, order_id=self.order_id, owner=self.owner
            )


class LeaseKeeper:
    """One thread per process that renews, every third of a lease, the leases of every order
    the process is driving — one statement per owner per round, not a thread and a
    transaction per order — so a slow step (a payment provider's answer, a retry's back-off,
    a slow Prefect server) never lets a lease lapse while the process lives; once it dies,
    renewals stop and its leases expire within `lease_seconds`. A round the database cannot
    take now is tried at the next; a lease taken over is simply not renewed (the driver's
    next fenced write raises `LeaseLost`)."""

    def __init__(self) -> None:
        self._held: dict[tuple[str, str], float] = {}  # (order, owner) -> lease seconds
        self._lock = threading.Lock()
        self._changed = threading.Event()
        self._thread: threading.Thread | None = None

    @contextmanager
    def kept(self, order_id: str, owner: str, lease_seconds: float) -> Iterator[None]:
        """Keep this lease renewed while the block runs."""
        with self._lock:
            self._held[(order_id, owner)] = lease_seconds
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="leases", daemon=True)
                self._thread.start()
        self._changed.set()
        try:
            yield
        finally:
            with self._lock:
                self._held.pop((order_id, owner), None)

    def _run(self) -> None:
        due = math.inf  # when the next round is due
        while True:
            self._changed.clear()  # before reading: a registration after it wakes the wait
            with self._lock:
                held = dict(self._held)
            if not held:
                due = math.inf
                self._changed.wait()
                continue
            period = min(held.values()) / 3
            due = min(due, time.monotonic() + period)  # a new lease was just taken
            if (wait := due - time.monotonic()) > 0:
                self._changed.wait(wait)
                continue
            self._renew(held)
            due = time.monotonic() + period

    @staticmethod
    def _renew(held: dict[tuple[str, str], float]) -> None:
        by_owner: dict[tuple[str, float], list[str]] = {}
        for (order_id, owner), seconds in held.items():
            by_owner.setdefault((owner, seconds), []).append(order_id)
        try:
            with session_scope() as session:
                for (owner, seconds), order_ids in by_owner.items():
                    saga_log.renew_leases(
                        session, order_ids=order_ids, owner=owner, lease_seconds=seconds
                    )
        except (SQLAlchemyError, StorageUnavailable) as exc:
            logger.warning("leases of %d orders not renewed: %s", len(held), exc)


LEASES = LeaseKeeper()


def drive_order(
    order_id: str,
    owner: str,
    *,
    statuses: frozenset[str] | None = None,
    cancel_requested: bool | None = None,
    before: dict[str, Any] | None = None,
) -> str | None:
    """Take the order's lease and drive it to a terminal status; None when another process
    holds it (or it no longer qualifies). `statuses` widens which orders may be taken (e.g.
    `needs_attention` for a retry) and `cancel_requested` narrows them (only a cancelled
    order may be unwound once it completed), both checked in the statement that takes the
    lease; `before` are fields set once the lease is ours (e.g. `status="compensating"`, or
    the Prefect run that drives it)."""
    settings = get_settings()
    with session_scope() as session:
        if not saga_log.acquire_lease(
            session,
            order_id=order_id,
            owner=owner,
            lease_seconds=settings.lease_seconds,
            statuses=statuses,
            cancel_requested=cancel_requested,
        ):
            return None
        if before:
            saga_log.update_order(session, order_id=order_id, **before)
    run = SagaRun(order_id, owner)
    try:
        with LEASES.kept(order_id, owner, settings.lease_seconds):
            return run.drive()
    except LeaseLost:
        return None
    finally:
        with session_scope() as session:
            saga_log.release_lease(session, order_id=order_id, owner=owner)


def settle_order(order_id: str, owner: str, **fields: Any) -> str | None:
    """Drive the order to its end from wherever it stands: forward or unwinding when in
    progress; fully compensated when it is completed (or needs attention) and a cancellation
    was requested — never otherwise, however stale the caller's view of it. None when
    another process holds it or it needs nothing. `fields` are set once it is ours."""
    with session_scope() as session:
        order = saga_log.get_order(session, order_id=order_id)
    if order.status in ACTIVE_STATUSES:
        return drive_order(order_id, owner, before=fields)
    if order.status not in UNWOUND_ON_CANCEL:
        return None
    # unwind whatever is on the rollback stack, only if (still) asked to
    undo = {"status": OrderStatus.COMPENSATING, **fields}
    if order.status == OrderStatus.COMPLETED:
        undo["failure_reason"] = CANCELLED_REASON
    return drive_order(
        order_id,
        owner,
        statuses=frozenset({order.status}),
        cancel_requested=True,
        before=undo,
    )
