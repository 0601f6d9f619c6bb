"""`saga_task`: turns one side effect into a retried Prefect task that logs every attempt on
the saga log, honours fault injection, never retries a domain refusal, and writes nothing
unless its process still holds the order's lease (the side effect and the lease renewal
share one transaction)."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, TypeVar

from prefect import Task, task
from prefect.cache_policies import NO_CACHE
from prefect.client.schemas.objects import TaskRun
from prefect.context import TaskRunContext
from prefect.states import State

from storage import saga
from storage.db import session_scope
from storage.errors import DomainRefusal, LeaseLost
from storage.settings import get_settings
from tasks import faults

R = TypeVar("R")
FINAL_ERRORS = (DomainRefusal, LeaseLost)


def _exception_of(state: State) -> BaseException | None:
    result = state.result(raise_on_failure=False)
    return result if isinstance(result, BaseException) else None


def retry_unless_final(_task: Task, _task_run: TaskRun, state: State) -> bool:
    """Retry condition: a domain refusal (unknown product, no stock, declined card) or a lost
    lease is final."""
    return not isinstance(_exception_of(state), FINAL_ERRORS)


def record_final_failure(task_: Task, _task_run: TaskRun, state: State) -> None:
    """on_failure hook: after the last attempt, mark the step failed on the saga log."""
    context = TaskRunContext.get()
    exc = _exception_of(state)
    if context is None or isinstance(exc, LeaseLost):
        return
    try:
        with saga.fenced(
            order_id=context.parameters["order_id"],
            owner=context.parameters["lease_owner"],
            lease_seconds=get_settings().lease_seconds,
        ) as session:
            saga.set_step_status(
                session,
                order_id=context.parameters["order_id"],
                name=task_.name,
                status="failed",
                error=f"{type(exc).__name__}: {exc}" if exc else state.message,
            )
    except LeaseLost:
        return


def _task_signature(fn: Callable[..., Any]) -> inspect.Signature:
    """`fn(session, order_id, ...)` as Prefect sees it: `(order_id, lease_owner, ...)`."""
    _, order_id, *rest = inspect.signature(fn).parameters.values()
    owner = inspect.Parameter(
        "lease_owner", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=str
    )
    return inspect.signature(fn).replace(parameters=[order_id, owner, *rest])


def saga_task(
    *, name: str, point: str, compensation: bool = False
) -> Callable[[Callable[..., R]], Task[..., R]]:
    """Wrap `fn(session, order_id, ...)` as the Prefect task `name`, owner of fault `point`.

    The task is called as `task(order_id, lease_owner, ...)`; `fn` runs in a transaction that
    renews that owner's lease first.
    """
    settings = get_settings()
    retries = settings.compensation_retries if compensation else settings.step_retries
    begin_status, end_status = (
        ("compensating", "compensated") if compensation else ("started", "completed")
    )

    def decorate(fn: Callable[..., R]) -> Task[..., R]:
        signature = _task_signature(fn)

        def run(*args: Any, **kwargs: Any) -> R:
            arguments = signature.bind(*args, **kwargs).arguments
            order_id, owner = arguments["order_id"], arguments.pop("lease_owner")
            lease = {"order_id": order_id, "owner": owner, "lease_seconds": settings.lease_seconds}
            with saga.fenced(**lease) as session:
                attempt = saga.begin_attempt(
                    session, order_id=order_id, name=name, event_status=begin_status
                )
            try:
                faults.maybe_crash(point, "before")
                with saga.fenced(**lease) as session:
                    result = fn(session, **arguments)
                faults.maybe_crash(point, "after")
                faults.maybe_fail(point, attempt, order_id)
            except Exception as exc:
                with session_scope() as session:
                    saga.end_attempt(
                        session,
                        order_id=order_id,
                        name=name,
                        attempt=attempt,
                        event_status="failed",
                        message=f"{type(exc).__name__}: {exc}",
                    )
                raise
            with session_scope() as session:
                saga.end_attempt(
                    session, order_id=order_id, name=name, attempt=attempt, event_status=end_status
                )
            return result

        run.__signature__ = signature  # type: ignore[attr-defined]
        run.__doc__, run.__name__, run.__qualname__ = fn.__doc__, fn.__name__, fn.__qualname__
        run.__module__ = fn.__module__
        return task(
            name=name,
            task_run_name=name,
            retries=retries,
            retry_delay_seconds=settings.retry_delays,
            retry_condition_fn=retry_unless_final,
            on_failure=[record_final_failure],
            cache_policy=NO_CACHE,
            persist_result=False,
        )(run)

    return decorate
