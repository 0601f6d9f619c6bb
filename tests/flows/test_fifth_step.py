"""Adding a step takes its module and one line of the step table: the steps of
`tests/flows/gift_wrap.py` join the saga, the fault points, the compensations, the sweep,
the cancel, the summary and the Prefect runs with nothing else changed (docs/extending.md)."""

from __future__ import annotations

import subprocess
import time
import uuid
from collections.abc import Iterator

import pytest
from prefect import get_client
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterFlowRunId,
    FlowRunFilter,
    FlowRunFilterId,
)

from flows.cancel import cancel
from flows.fulfill import record_order
from flows.outcome import run_locally
from flows.reconcile import reconcile
from storage.db import session_scope
from storage.models import OrderCreate
from tasks import faults
from tests.flows.gift_wrap import gift_wraps, with_gift_wrap
from tests.flows.helpers import completions_per_step, order_summary, place
from tests.support import PYTHON, ROOT, assert_audit_clean, child_env

pytestmark = pytest.mark.usefixtures("prefect_server", "db", "gift_wrapped")
FORWARD = [
    "check_inventory",
    "reserve_inventory",
    "process_payment",
    "wrap_gift",
    "update_warehouse",
    "notify_customer",
]
EVERY_COMPENSATION = ["revert_warehouse", "unwrap_gift", "refund_payment", "release_inventory"]


@pytest.fixture
def gift_wrapped() -> Iterator[None]:
    with with_gift_wrap():
        yield


def wraps() -> dict[str, str]:
    with session_scope() as session:
        return gift_wraps(session)


def test_new_steps_run_in_table_order():
    summary = place(order_id="five")
    assert summary.status == "completed"
    assert summary.steps_completed == FORWARD
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
    assert wraps() == {"five": "wrapped"}
    assert_audit_clean()


def test_the_new_step_failing_at_its_point_is_undone_with_what_came_before(
    monkeypatch: pytest.MonkeyPatch,
):
    monkeypatch.setenv("FAIL_AT", "wrap_gift")
    summary = place(order_id="torn")
    assert (summary.status, summary.failure_point) == ("failed", "wrap_gift")
    assert summary.compensations == ["unwrap_gift", "refund_payment", "release_inventory"]
    assert wraps() == {"torn": "unwrapped"}
    assert_audit_clean()


def test_a_new_step_failing_unwinds_everything_before_it(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("FAIL_AT", "notify_customer")
    summary = place(order_id="untold")
    assert (summary.status, summary.failure_point) == ("failed", "notify_customer")
    assert summary.compensations == EVERY_COMPENSATION
    assert wraps() == {"untold": "unwrapped"}
    assert_audit_clean()


def test_a_new_compensation_is_a_fault_point_too(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("FAIL_AT", "warehouse,unwrap_gift")
    summary = place(order_id="stuck-wrapped")
    assert summary.status == "needs_attention"
    assert "unwrap_gift" in summary.failure_reason
    assert summary.compensations == EVERY_COMPENSATION  # every one ran, the failing one too
    assert wraps() == {"stuck-wrapped": "unwrapped"}  # FAIL_AT strikes after the effect


@pytest.mark.e2e
@pytest.mark.parametrize("moment", ["before", "after"])
def test_a_crash_at_the_new_step_is_resumed_by_the_sweep(prefect_server, moment: str):
    order_id, _ = record_order(
        OrderCreate(product_id="SKU-001", quantity=1, customer_id="c", payment_method="tok_visa")
    )
    env = child_env(prefect_server, CRASH_AT=f"wrap_gift:{moment}", FLOWFORGE_LEASE_SECONDS="1")
    child = subprocess.run(
        [PYTHON, "-m", "tests.flows.gift_wrap", order_id], env=env, cwd=ROOT, timeout=120
    )
    assert child.returncode == -9
    assert order_summary(order_id).status == "running"
    time.sleep(1.2)  # the dead process's lease lapses

    assert run_locally(reconcile, stale_after=0)["swept"] == 1
    summary = order_summary(order_id)
    assert summary.status == "completed"
    assert summary.steps_completed == FORWARD
    assert completions_per_step(summary)["wrap_gift"] == 1
    assert wraps() == {order_id: "wrapped"}
    assert_audit_clean()


def test_cancelling_a_completed_order_unwraps_it():
    assert place(order_id="regretted").status == "completed"
    summary = cancel("regretted").summary
    assert summary.status == "cancelled"
    assert summary.compensations == EVERY_COMPENSATION
    assert wraps() == {"regretted": "unwrapped"}
    assert_audit_clean()


def test_prefect_shows_the_new_steps_as_task_runs_with_the_timeline(
    monkeypatch: pytest.MonkeyPatch,
):
    """Every step and compensation is a task run of the order's flow run, and the timeline
    artifact of an order that did not complete lists the new ones."""
    monkeypatch.setenv("FAIL_AT", "notify_customer")
    summary = place(order_id="shown")
    flow_run = uuid.UUID(summary.flow_run_id)
    expected = sorted(FORWARD + EVERY_COMPENSATION)
    deadline = time.monotonic() + 30
    with get_client(sync_client=True) as client:
        while True:  # task runs reach the server as events, a moment later
            runs = client.read_task_runs(
                flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run]))
            )
            names = sorted(run.name for run in runs if run.state and run.state.is_final())
            if names == expected or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        [artifact] = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run]))
        )
    assert names == expected
    assert "| wrap_gift | completed |" in artifact.data
    assert "| unwrap_gift | compensated |" in artifact.data
