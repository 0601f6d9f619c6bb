"""`saga_task`: turns one side effect into a retried Prefect task that logs every attempt on
the saga log, honours fault injection, never retries a domain refusal, and writes nothing
unless its process still holds the order's lease (every write shares a transaction with the
lease's renewal)."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, TypeVar

from prefect import Task, task
from prefect.cache_policies import NO_CACHE
from prefect.client.schemas.objects import TaskRun
from prefect.context import TaskRunContext
from prefect.states import State
from sqlmodel import Session

from storage import saga_log
from storage.errors import FinalError, LeaseLost
from storage.models import EventStatus, StepStatus
from storage.settings import get_settings
from tasks import faults

R = TypeVar("R")
# opens a transaction that first renews the order's lease (`LeaseLost` when it is gone)
Fence = Callable[[], AbstractContextManager[Session]]
# filled by `saga_task` for each task it declares: task name -> the setting that holds its
# retry count
_RETRIES_SETTING: dict[str, str] = {}
_with_policy: dict[tuple[int, int, tuple[float, ...]], Task[..., Any]] = {}


def _exception_of(state: State) -> BaseException | None:
    result = state.result(raise_on_failure=False)
    return result if isinstance(result, BaseException) else None


def retry_unless_final(_task: Task, _task_run: TaskRun, state: State) -> bool:
    """Retry condition: anything but a `FinalError` is retried."""
    return not isinstance(_exception_of(state), FinalError)


def record_final_failure(task_: Task, _task_run: TaskRun, state: State) -> None:
    """on_failure hook: after the last attempt, mark the step failed on the saga log."""
    context = TaskRunContext.get()
    exc = _exception_of(state)
    if context is None or isinstance(exc, LeaseLost):
        return
    try:
        with saga_log.fenced(
            order_id=context.parameters["order_id"],
            owner=context.parameters["lease_owner"],
            lease_seconds=get_settings().lease_seconds,
        ) as session:
            saga_log.set_step_status(
                session,
                order_id=context.parameters["order_id"],
                name=task_.name,
                status=StepStatus.FAILED,
                error=f"{type(exc).__name__}: {exc}" if exc else state.message,
            )
    except LeaseLost:
        return


@dataclass(frozen=True)
class Attempt:
    """One attempt of a step or compensation and its record on the saga log: `statuses` are
    the events that begin and end a successful attempt."""

    order_id: str
    name: str
    lease: dict[str, Any]
    statuses: tuple[str, str]

    def run(self, effect: Callable[[Session], R]) -> R:
        """The attempt's start, its side effect and its success in one fenced transaction; a
        failure rolls the side effect back and is recorded in a transaction of its own."""
        try:
            with saga_log.fenced(**self.lease) as session:
                number = self._begin(session)
                result = effect(session)
                self._end(session, number)
        except LeaseLost:
            raise
        except Exception as exc:
            with saga_log.fenced(**self.lease) as session:
                self._end(session, self._begin(session), exc)
            raise
        return result

    def run_staged(self, point: str, effect: Callable[[], R]) -> R:
        """The start, the side effect and the end each in a transaction of their own: so that
        a fault injected just before or just after the side effect finds the saga log exactly
        as a crash at that moment would, and so that nothing is held open while the effect
        waits on another system (`effect` opens its own transactions)."""
        with saga_log.fenced(**self.lease) as session:
            number = self._begin(session)
        try:
            faults.maybe_crash(point, "before")
            result = effect()
            faults.maybe_crash(point, "after")
            faults.maybe_fail(point, number, self.order_id)
        except LeaseLost:
            raise
        except Exception as exc:
            with saga_log.fenced(**self.lease) as session:
                self._end(session, number, exc)
            raise
        with saga_log.fenced(**self.lease) as session:
            self._end(session, number)
        return result

    def _begin(self, session: Session) -> int:
        return saga_log.begin_attempt(
            session, order_id=self.order_id, name=self.name, event_status=self.statuses[0]
        )

    def _end(self, session: Session, number: int, error: Exception | None = None) -> None:
        saga_log.end_attempt(
            session,
            order_id=self.order_id,
            name=self.name,
            attempt=number,
            event_status=EventStatus.FAILED if error else self.statuses[1],
            message=f"{type(error).__name__}: {error}" if error else "",
        )


def _task_signature(fn: Callable[..., Any]) -> inspect.Signature:
    """`fn(session | fence, order_id, ...)` as Prefect sees it: `(order_id, lease_owner, ...)`."""
    _, order_id, *rest = inspect.signature(fn).parameters.values()
    owner = inspect.Parameter(
        "lease_owner", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=str
    )
    return inspect.signature(fn).replace(parameters=[order_id, owner, *rest])


def _in_transaction(fence: Fence, effect: Callable[[Session], R]) -> R:
    with fence() as session:
        return effect(session)


def with_current_retries(task_: Task[..., R]) -> Task[..., R]:
    """`task_` with the retry count and delays the settings give now, when it is about to run
    (not the ones of when `tasks` was imported); one copy per policy is kept."""
    settings = get_settings()
    retries = getattr(settings, _RETRIES_SETTING[task_.name])
    delays = tuple(settings.retry_delays)
    key = (id(task_), retries, delays)
    if (configured := _with_policy.get(key)) is None:
        configured = task_.with_options(retries=retries, retry_delay_seconds=list(delays))
        _with_policy[key] = configured
    return configured


def _attempt_runner(
    fn: Callable[..., R], *, name: str, waits: bool, statuses: tuple[str, str]
) -> Callable[..., R]:
    """What Prefect runs for `fn`: bind `(order_id, lease_owner, ...)`, then one attempt of
    `fn` on the saga log (through the fault hooks when the task's point is armed for the
    order, or when `fn` `waits` on another system and runs outside the attempt's
    transaction)."""
    signature = _task_signature(fn)

    def run(*args: Any, **kwargs: Any) -> R:
        arguments = signature.bind(*args, **kwargs).arguments
        order_id, owner = arguments["order_id"], arguments.pop("lease_owner")
        point = faults.point_of(name)
        attempt = Attempt(
            order_id=order_id,
            name=name,
            lease={
                "order_id": order_id,
                "owner": owner,
                "lease_seconds": get_settings().lease_seconds,
            },
            statuses=statuses,
        )
        fence = functools.partial(saga_log.fenced, **attempt.lease)
        if waits:
            return attempt.run_staged(point, functools.partial(fn, fence, **arguments))
        effect = functools.partial(fn, **arguments)
        if faults.armed(point, order_id):
            return attempt.run_staged(point, functools.partial(_in_transaction, fence, effect))
        return attempt.run(effect)

    run.__signature__ = signature  # type: ignore[attr-defined]
    run.__doc__, run.__name__, run.__qualname__ = fn.__doc__, fn.__name__, fn.__qualname__
    run.__module__ = fn.__module__
    return run


def saga_task(
    *,
    name: str,
    compensation: bool = False,
    waits: bool = False,
) -> Callable[[Callable[..., R]], Task[..., R]]:
    """Wrap `fn` as the Prefect task `name`, called as `task(order_id, lease_owner, ...)`.

    By default `fn(session, order_id, ...)` runs in one transaction that renews that owner's
    lease first. With `waits=True` (it waits on another system) `fn(fence, order_id, ...)`
    runs outside any transaction and opens its own with `with fence() as session:`, each
    renewing the lease first. Every error is retried but a `FinalError` (a domain refusal,
    a lost lease, or what an integration declares final by subclassing it). Its fault point
    and its place in the saga come from the step table (`tasks.steps`).
    """
    settings = get_settings()
    _RETRIES_SETTING[name] = "compensation_retries" if compensation else "step_retries"
    retries = getattr(settings, _RETRIES_SETTING[name])  # until `with_current_retries`
    statuses = (
        (EventStatus.COMPENSATING, EventStatus.COMPENSATED)
        if compensation
        else (EventStatus.STARTED, EventStatus.COMPLETED)
    )

    def decorate(fn: Callable[..., R]) -> Task[..., R]:
        return task(
            name=name,
            task_run_name=name,
            retries=retries,
            retry_delay_seconds=settings.retry_delays,
            retry_condition_fn=retry_unless_final,
            on_failure=[record_final_failure],
            cache_policy=NO_CACHE,
            persist_result=False,
        )(_attempt_runner(fn, name=name, waits=waits, statuses=statuses))

    return decorate
