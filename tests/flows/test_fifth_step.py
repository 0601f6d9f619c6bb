"""Adding a step takes its module and one line of the step table: steps declared here (this
file is their module) join the saga, the fault points, the compensations and the summary
with nothing else changed."""

from __future__ import annotations

import pytest
from sqlmodel import Session

from tasks import faults, steps
from tasks.saga_task import saga_task
from tasks.steps import Step
from tests.flows.helpers import place
from tests.support import assert_audit_clean

pytestmark = pytest.mark.usefixtures("prefect_server", "db")


@saga_task(name="notify_customer")
def notify_customer(session: Session, order_id: str, customer_id: str) -> str:
    """Tell the customer (a step with no compensation)."""
    return f"told {customer_id} about {order_id}"


@saga_task(name="wrap_gift")
def wrap_gift(session: Session, order_id: str) -> bool:
    """Wrap the order (a step with a compensation)."""
    return True


@saga_task(name="unwrap_gift", compensation=True)
def unwrap_gift(session: Session, order_id: str) -> bool:
    """Compensation of wrap_gift."""
    return True


def customer(order) -> dict:
    return {"customer_id": order.customer_id}


@pytest.fixture
def with_new_steps(monkeypatch: pytest.MonkeyPatch) -> None:
    """The table with a gift wrap before the warehouse and a notification at the end."""
    *head, warehouse = steps.STEPS
    table = (
        *head,
        Step(wrap_gift, args=lambda order: {}, undo=unwrap_gift),
        warehouse,
        Step(notify_customer, args=customer),
    )
    monkeypatch.setattr(steps, "STEPS", table)


@pytest.mark.usefixtures("with_new_steps")
def test_new_steps_run_in_table_order():
    summary = place(order_id="five")
    assert summary.status == "completed"
    assert summary.steps_completed == [
        "check_inventory",
        "reserve_inventory",
        "process_payment",
        "wrap_gift",
        "update_warehouse",
        "notify_customer",
    ]
    assert list(faults.points()) == [
        "inventory-check",
        "inventory",
        "payment",
        "wrap_gift",
        "warehouse",
        "notify_customer",
        "release",
        "refund",
        "unwrap_gift",
        "revert",
    ]
    assert_audit_clean()


@pytest.mark.usefixtures("with_new_steps")
def test_a_new_step_failing_unwinds_everything_before_it(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("FAIL_AT", "notify_customer")
    summary = place(order_id="untold")
    assert (summary.status, summary.failure_point) == ("failed", "notify_customer")
    assert summary.compensations == [
        "revert_warehouse",
        "unwrap_gift",
        "refund_payment",
        "release_inventory",
    ]
    assert_audit_clean()


@pytest.mark.usefixtures("with_new_steps")
def test_a_new_compensation_is_a_fault_point_too(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("FAIL_AT", "warehouse,unwrap_gift")
    summary = place(order_id="stuck-wrapped")
    assert summary.status == "needs_attention"
    assert "unwrap_gift" in summary.failure_reason
    assert summary.compensations == [  # every compensation ran, the failing one too
        "revert_warehouse",
        "unwrap_gift",
        "refund_payment",
        "release_inventory",
    ]
