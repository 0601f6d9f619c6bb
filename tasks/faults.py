"""Fault injection from the environment: `FAIL_AT` and `CRASH_AT` (see the README's Fault
injection). The points are the step table's (`tasks.steps`)."""

from __future__ import annotations

import os
import signal
from dataclasses import dataclass
from fnmatch import fnmatchcase

CRASH_MOMENTS = ("before", "after")


def points() -> dict[str, str]:
    """{fault point: the step or compensation that owns it}, in saga order (the steps, then
    their compensations), as the step table (`tasks.steps`) declares them."""
    from tasks import steps  # the table imports every task, and each task this module

    return steps.fault_points()


def point_of(task_name: str) -> str:
    """The fault point of a step or compensation (its declared name, else its own)."""
    return next((point for point, task in points().items() if task == task_name), task_name)


def _canonical(point: str) -> str | None:
    """A declared point, or the task name of one (either names it), as the declared point."""
    known = points()
    if point in known:
        return point
    return next((p for p, task in known.items() if task == point), None)


class InjectedFault(RuntimeError):
    """Raised by `FAIL_AT` right after a point's side effect."""


class FaultSpecError(ValueError):
    """`FAIL_AT` or `CRASH_AT` names something that does not exist."""


@dataclass(frozen=True)
class Failure:
    """One `FAIL_AT` entry, `POINT[:N][@GLOB]`: the first N attempts (every one when N is
    None) of the orders whose id matches GLOB fail at POINT."""

    point: str
    attempts: int | None = None
    orders: str = "*"

    def hits(self, point: str, attempt: int, order_id: str) -> bool:
        return (
            point == self.point
            and (self.attempts is None or attempt <= self.attempts)
            and fnmatchcase(order_id, self.orders)
        )


def _entries(variable: str) -> list[tuple[str, str | None, str | None]]:
    """Each comma-separated `POINT[:ARG][@GLOB]` of `variable` as (point, arg, glob)."""
    raw = os.environ.get(variable, "").strip()
    entries = []
    for item in filter(None, (part.strip() for part in raw.split(","))):
        spec, at, glob = item.partition("@")
        named, _, arg = spec.partition(":")
        point = _canonical(named)
        if point is None:
            raise FaultSpecError(
                f"{variable}: unknown point {named!r} (expected one of {', '.join(points())})"
            )
        if at and not glob.strip():
            raise FaultSpecError(f"{variable}: {item} needs an order id pattern after '@'")
        entries.append((point, arg or None, glob.strip() if at else None))
    return entries


def fail_at() -> list[Failure]:
    """`FAIL_AT` as its entries, in order."""
    failures = []
    for point, arg, glob in _entries("FAIL_AT"):
        if arg is not None and not (arg.isdigit() and int(arg) > 0):
            raise FaultSpecError(f"FAIL_AT: {point}:{arg} needs a positive attempt count")
        failures.append(Failure(point, int(arg) if arg else None, glob or "*"))
    return failures


def crash_at() -> dict[str, str]:
    """`CRASH_AT` as {point: 'before' | 'after'}."""
    spec = {}
    for point, arg, glob in _entries("CRASH_AT"):
        if arg not in CRASH_MOMENTS:
            raise FaultSpecError(f"CRASH_AT: {point} needs ':before' or ':after'")
        if glob is not None:
            raise FaultSpecError(f"CRASH_AT: {point} takes no '@' order pattern")
        spec[point] = arg
    return spec


def validate() -> None:
    """Raise `FaultSpecError` when either variable is malformed."""
    fail_at()
    crash_at()


def armed(point: str, order_id: str) -> bool:
    """Whether a fault may strike this point for this order (any attempt, any moment)."""
    return point in crash_at() or any(
        failure.point == point and fnmatchcase(order_id, failure.orders) for failure in fail_at()
    )


def maybe_crash(point: str, moment: str) -> None:
    """SIGKILL this process when `CRASH_AT` names this point and moment: no cleanup at all."""
    if crash_at().get(point) == moment:
        os.kill(os.getpid(), signal.SIGKILL)


def maybe_fail(point: str, attempt: int, order_id: str) -> None:
    """Raise `InjectedFault` when a `FAIL_AT` entry names this point, attempt and order."""
    if any(failure.hits(point, attempt, order_id) for failure in fail_at()):
        raise InjectedFault(f"injected failure at {point} (attempt {attempt})")
