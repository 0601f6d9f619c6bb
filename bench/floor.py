"""The floor: FlowForge's saga with no orchestrator, in plain Python.

It runs the engine's own steps (the step table, `tasks.steps.STEPS`) by calling each task's
undecorated function (`task.fn`): the same side effects, the same saga log rows and
transactions per attempt, the same fault points (`FAIL_AT`) and lease fencing, with nothing
of Prefect's task engine around them; it enters each step with the engine's own
`SagaRun.enter` (each compensation registered before its step) and does the rest of what
`flows/saga.py` does in storage calls: retries (never of a final error, as the tasks
declare them), on failure the compensations newest first.
The saga is cut into units (`begin`, `run_step`, `unwind`, `compensate`, `finish`) and
`drive` hands each one to a `call(unit, *args)`: `call_directly` runs it here with
FlowForge's retry policy, `bench.dbos_peer` runs it as a DBOS step."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from sqlmodel import Session

from flows.saga import SagaRun
from storage import saga_log
from storage.db import session_scope
from storage.errors import DomainRefusal, FinalError, LeaseLost
from storage.settings import get_settings
from tasks.steps import STEPS

OWNER = f"bench-floor:{os.getpid()}"
Call = Callable[..., Any]


@contextmanager
def _fenced(order_id: str) -> Iterator[Session]:
    """A transaction that first renews this process's lease on the order."""
    with saga_log.fenced(
        order_id=order_id, owner=OWNER, lease_seconds=get_settings().lease_seconds
    ) as session:
        yield session


def begin(order_id: str) -> None:
    """Take the order's lease."""
    with session_scope() as session:
        if not saga_log.acquire_lease(
            session, order_id=order_id, owner=OWNER, lease_seconds=get_settings().lease_seconds
        ):
            raise LeaseLost(order_id)


def run_step(order_id: str, position: int) -> None:
    """Enter step `position` as the engine does (the order marked, the step and its
    compensation registered, one transaction), then run one attempt of it."""
    step = STEPS[position]
    order, row = SagaRun(order_id, OWNER).enter(position, step)
    if row is None:
        raise RuntimeError(f"order {order_id} was cancelled: the floor does not cancel")
    step.task.fn(order_id, OWNER, **step.args(order))


def unwind(order_id: str, position: int, reason: str, refused: bool) -> None:
    """Record why step `position` failed and start compensating (a refused step changed
    nothing, so its own compensation is skipped)."""
    step = STEPS[position]
    with _fenced(order_id) as session:
        saga_log.set_step_status(
            session, order_id=order_id, name=step.name, status="failed", error=reason
        )
        if refused and step.undo is not None:
            saga_log.set_step_status(
                session, order_id=order_id, name=step.undo.name, status="skipped"
            )
        saga_log.update_order(
            session,
            order_id=order_id,
            status="compensating",
            current_step=None,
            failure_reason=reason,
            failure_point=step.name,
        )


def compensate(order_id: str, position: int) -> None:
    """Run one attempt of the compensation of step `position`."""
    undo = STEPS[position].undo
    assert undo is not None
    SagaRun(order_id, OWNER).update(current_step=undo.name)
    undo.fn(order_id, OWNER)


def finish(order_id: str, status: str, failures: dict[str, str]) -> str:
    """Set the terminal status, mark each compensation that gave up (name: its last error)
    failed on the saga log and in the failure reason, and free the lease."""
    with _fenced(order_id) as session:
        if status == "completed":
            if not saga_log.complete_unless_cancelled(session, order_id=order_id, owner=OWNER):
                raise RuntimeError(f"order {order_id} was cancelled: the floor does not cancel")
        else:
            values: dict[str, Any] = {"status": status, "current_step": None}
            for name, error in failures.items():
                saga_log.set_step_status(
                    session, order_id=order_id, name=name, status="failed", error=error
                )
            if failures:
                reason = saga_log.get_order(session, order_id=order_id).failure_reason
                problems = "; ".join(f"{name}: {error}" for name, error in failures.items())
                values["failure_reason"] = f"{reason} | compensation failed: {problems}"
            saga_log.update_order(session, order_id=order_id, **values)
        saga_log.release_lease(session, order_id=order_id, owner=OWNER)
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
        except Exception as exc:
            if attempt == last or isinstance(exc, FinalError):
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
