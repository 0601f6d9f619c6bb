"""Fault injection from the environment: `FAIL_AT` and `CRASH_AT` (see DESIGN.md)."""

from __future__ import annotations

import os
import signal

# fault point -> the step or compensation that owns it
POINTS = {
    "inventory-check": "check_inventory",
    "inventory": "reserve_inventory",
    "payment": "process_payment",
    "warehouse": "update_warehouse",
    "release": "release_inventory",
    "refund": "refund_payment",
    "revert": "revert_warehouse",
}
CRASH_MOMENTS = ("before", "after")


class InjectedFault(RuntimeError):
    """Raised by `FAIL_AT` right after a point's side effect."""


class FaultSpecError(ValueError):
    """`FAIL_AT` or `CRASH_AT` names something that does not exist."""


def _entries(variable: str) -> list[tuple[str, str | None]]:
    raw = os.environ.get(variable, "").strip()
    entries = []
    for item in filter(None, (part.strip() for part in raw.split(","))):
        point, _, arg = item.partition(":")
        if point not in POINTS:
            raise FaultSpecError(
                f"{variable}: unknown point {point!r} (expected one of {', '.join(POINTS)})"
            )
        entries.append((point, arg or None))
    return entries


def fail_at() -> dict[str, int | None]:
    """`FAIL_AT` as {point: number of failing attempts, or None for every attempt}."""
    spec: dict[str, int | None] = {}
    for point, arg in _entries("FAIL_AT"):
        if arg is not None and not (arg.isdigit() and int(arg) > 0):
            raise FaultSpecError(f"FAIL_AT: {point}:{arg} needs a positive attempt count")
        spec[point] = int(arg) if arg else None
    return spec


def crash_at() -> dict[str, str]:
    """`CRASH_AT` as {point: 'before' | 'after'}."""
    spec = {}
    for point, arg in _entries("CRASH_AT"):
        if arg not in CRASH_MOMENTS:
            raise FaultSpecError(f"CRASH_AT: {point} needs ':before' or ':after'")
        spec[point] = arg
    return spec


def validate() -> None:
    """Raise `FaultSpecError` when either variable is malformed."""
    fail_at()
    crash_at()


def maybe_crash(point: str, moment: str) -> None:
    """SIGKILL this process when `CRASH_AT` names this point and moment: no cleanup at all."""
    if crash_at().get(point) == moment:
        os.kill(os.getpid(), signal.SIGKILL)


def maybe_fail(point: str, attempt: int) -> None:
    """Raise `InjectedFault` when `FAIL_AT` names this point for this attempt."""
    spec = fail_at()
    if point in spec and (spec[point] is None or attempt <= spec[point]):
        raise InjectedFault(f"injected failure at {point} (attempt {attempt})")
