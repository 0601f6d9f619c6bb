"""The saga's step table: every step, in order, declared once — its task, the compensation
that undoes it, how its arguments come from the order, the idempotency key both are
registered under, and its fault point. Everything that lists steps (the engine, the fault
points and their order, the compensations, the bench, the tests) derives from `STEPS`.

A step's task is a `saga_task` in its integration's module (tasks/inventory.py, …), which
declares the rest: whether it waits on another system, which errors are final. Adding a step
is that module plus one line here (docs/architecture.md, "Adding a step")."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import KW_ONLY, dataclass
from typing import Any

from prefect import Task

from storage.models import Order
from tasks.inventory import check_inventory, release_inventory, reservation_key, reserve_inventory
from tasks.payment import payment_key, process_payment, refund_payment
from tasks.warehouse import revert_warehouse, update_warehouse, warehouse_key


def stock_args(order: Order) -> dict[str, Any]:
    """The order's lines: what the stock and warehouse tasks take."""
    return {"lines": list(order.lines)}


def payment_args(order: Order) -> dict[str, Any]:
    """The lines plus who pays and how."""
    return {
        **stock_args(order),
        "payment_method": order.payment_method,
        "customer_id": order.customer_id,
    }


@dataclass(frozen=True)
class Step:
    """A forward task; how its arguments come from the order, the compensation that undoes
    it, the idempotency key both are registered under, and the fault points of the two
    (default: the task's name; either name works in `FAIL_AT`/`CRASH_AT`)."""

    task: Task
    _: KW_ONLY
    args: Callable[[Order], dict[str, Any]]
    undo: Task | None = None
    key: Callable[[str], str] | None = None
    point: str | None = None
    undo_point: str | None = None

    @property
    def name(self) -> str:
        return self.task.name


STEPS: tuple[Step, ...] = (
    Step(check_inventory, args=stock_args, point="inventory-check"),
    Step(
        reserve_inventory,
        args=stock_args,
        undo=release_inventory,
        key=reservation_key,
        point="inventory",
        undo_point="release",
    ),
    Step(
        process_payment,
        args=payment_args,
        undo=refund_payment,
        key=payment_key,
        point="payment",
        undo_point="refund",
    ),
    Step(
        update_warehouse,
        args=stock_args,
        undo=revert_warehouse,
        key=warehouse_key,
        point="warehouse",
        undo_point="revert",
    ),
)


def compensations() -> dict[str, Task]:
    """Each compensation by name, in step order."""
    return {step.undo.name: step.undo for step in STEPS if step.undo is not None}


def fault_points() -> dict[str, str]:
    """{fault point: task name}: the steps in order, then their compensations."""
    forward = {step.point or step.name: step.name for step in STEPS}
    undo = {step.undo_point or step.undo.name: step.undo.name for step in STEPS if step.undo}
    return forward | undo


def undoable_points() -> list[str]:
    """The fault points of the steps that have a compensation (a side effect to undo)."""
    return [step.point or step.name for step in STEPS if step.undo is not None]


def compensation_points() -> list[str]:
    """The fault points of the compensations, in step order."""
    return [step.undo_point or step.undo.name for step in STEPS if step.undo is not None]


def step_names() -> list[str]:
    """The steps' names, in saga order."""
    return [step.name for step in STEPS]
