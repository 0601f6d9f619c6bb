"""`saga_task`: turns one side effect into a retried Prefect task that logs every attempt on
the saga log, honours fault injection, and never retries a domain refusal."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

from prefect import Task, task
from prefect.cache_policies import NO_CACHE
from prefect.client.schemas.objects import TaskRun
from prefect.context import TaskRunContext
from prefect.states import State

from storage import saga
from storage.db import session_scope
from storage.errors import DomainRefusal
from storage.settings import get_settings
from tasks import faults

P = ParamSpec("P")
R = TypeVar("R")


def _exception_of(state: State) -> BaseException | None:
    result = state.result(raise_on_failure=False)
    return result if isinstance(result, BaseException) else None


def retry_unless_refused(_task: Task, _task_run: TaskRun, state: State) -> bool:
    """Retry condition: a domain refusal (unknown product, no stock, declined card) is final."""
    return not isinstance(_exception_of(state), DomainRefusal)


def record_final_failure(task_: Task, _task_run: TaskRun, state: State) -> None:
    """on_failure hook: after the last attempt, mark the step failed on the saga log."""
    context = TaskRunContext.get()
    if context is None:
        return
    exc = _exception_of(state)
    with session_scope() as session:
        saga.set_step_status(
            session,
            order_id=context.parameters["order_id"],
            name=task_.name,
            status="failed",
            error=f"{type(exc).__name__}: {exc}" if exc else state.message,
        )


def saga_task(
    *, name: str, point: str, compensation: bool = False
) -> Callable[[Callable[P, R]], Task[P, R]]:
    """Wrap `fn(order_id, ...)` as the Prefect task `name`, owner of fault point `point`."""
    settings = get_settings()
    retries = settings.compensation_retries if compensation else settings.step_retries
    begin_status, end_status = (
        ("compensating", "compensated") if compensation else ("started", "completed")
    )

    def decorate(fn: Callable[P, R]) -> Task[P, R]:
        @functools.wraps(fn)
        def run(order_id: str, *args: Any, **kwargs: Any) -> R:
            with session_scope() as session:
                attempt = saga.begin_attempt(
                    session, order_id=order_id, name=name, event_status=begin_status
                )
            try:
                faults.maybe_crash(point, "before")
                result = fn(order_id, *args, **kwargs)
                faults.maybe_crash(point, "after")
                faults.maybe_fail(point, attempt)
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

        return task(
            name=name,
            task_run_name=name,
            retries=retries,
            retry_delay_seconds=settings.retry_delays,
            retry_condition_fn=retry_unless_refused,
            on_failure=[record_final_failure],
            cache_policy=NO_CACHE,
            persist_result=False,
        )(run)

    return decorate
