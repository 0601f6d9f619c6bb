"""Cancellation of in-flight and completed orders; `--retry` of a needs_attention order."""

from __future__ import annotations

import json
import time

import pytest

from flows.cancel import cancel
from flows.reconcile import retry_order
from storage.errors import OrderNotFound
from tests.flows.helpers import engine_state, order_summary, place, spawn_order
from tests.support import assert_audit_clean, child_env, run_module

pytestmark = pytest.mark.usefixtures("db")


def test_cancel_completed_order_compensates_everything(prefect_server):
    done = place(order_id="done-1")
    assert done.status == "completed"
    outcome = cancel("done-1")
    assert outcome.changed
    result = outcome.summary
    assert result.status == "cancelled"
    assert result.failure_reason == "cancelled by request"
    assert result.compensations == ["revert_warehouse", "refund_payment", "release_inventory"]
    state = engine_state()
    assert [p["status"] for p in state["payments"]] == ["refunded"]
    assert [w["status"] for w in state["warehouse"]] == ["reverted"]
    assert_audit_clean()


def wait_for_failed_attempt(order_id: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if any(e.status == "failed" for e in order_summary(order_id).events):
                return
        except OrderNotFound:
            pass
        time.sleep(0.1)
    raise AssertionError(f"{order_id} never showed a failed attempt")


@pytest.mark.e2e
@pytest.mark.parametrize(
    ("point", "compensations"),
    [
        ("payment", ["refund_payment", "release_inventory"]),
        ("warehouse", ["revert_warehouse", "refund_payment", "release_inventory"]),  # last step
    ],
)
def test_cancel_in_flight_order_stops_at_next_boundary(prefect_server, point, compensations):
    # the step fails once and waits 3 s before its retry: time enough to cancel mid-flight
    order_id = f"fly-{point}"
    proc = spawn_order(prefect_server, order_id, FAIL_AT=f"{point}:1", FLOWFORGE_RETRY_DELAYS="3")
    wait_for_failed_attempt(order_id)
    outcome = cancel(order_id)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 1, err[-2000:]
    result = order_summary(order_id)
    assert outcome.summary.status == result.status == "cancelled"
    assert result.compensations == compensations
    assert json.loads(out)["status"] == "cancelled"
    assert_audit_clean()


@pytest.mark.e2e
def test_cancel_takes_over_from_a_killed_driver(prefect_server):
    proc = spawn_order(
        prefect_server, "dead-1", CRASH_AT="payment:after", FLOWFORGE_LEASE_SECONDS="2"
    )
    proc.communicate(timeout=60)
    assert proc.returncode == -9
    assert order_summary("dead-1").status == "running"  # its lease is still live here
    outcome = cancel("dead-1")
    assert outcome.summary.status == "cancelled"
    assert outcome.summary.compensations == ["refund_payment", "release_inventory"]
    assert [p["status"] for p in engine_state()["payments"]] == ["refunded"]
    assert_audit_clean()


def test_cancel_settled_order_is_a_noop(prefect_server, monkeypatch):
    monkeypatch.setenv("FAIL_AT", "payment")
    failed = place(order_id="gone-1")
    before = engine_state()
    outcome = cancel("gone-1")
    assert not outcome.changed
    assert outcome.message == "order gone-1 is already failed"
    assert outcome.summary.status == "failed"
    assert engine_state() == before
    assert failed.events == outcome.summary.events
    assert_audit_clean()


@pytest.mark.e2e
def test_cancel_cli(prefect_server):
    place(order_id="cli-cancel")
    env = child_env(prefect_server)
    ok = run_module("flows.cancel", "cli-cancel", "--json", env=env, timeout=120)
    assert ok.returncode == 0, ok.stderr[-2000:]
    assert json.loads(ok.stdout)["status"] == "cancelled"
    unknown = run_module("flows.cancel", "nope", env=env, timeout=120)
    assert unknown.returncode == 2
    assert unknown.stderr.strip() == "python -m flows.cancel: error: order 'nope' not found"
    assert_audit_clean()


def test_needs_attention_then_retry_after_fault_is_gone(prefect_server, monkeypatch):
    monkeypatch.setenv("FAIL_AT", "warehouse,release")
    stuck = place(order_id="stuck-1")
    assert stuck.status == "needs_attention"
    assert "release_inventory" in stuck.failure_reason
    snapshot_order = next(o for o in engine_state()["orders"] if o["order_id"] == "stuck-1")
    assert snapshot_order["status"] == "needs_attention"

    still = retry_order("stuck-1")  # the fault is still there: stays needs_attention
    assert still.summary.status == "needs_attention"

    monkeypatch.delenv("FAIL_AT")
    outcome = retry_order("stuck-1")
    assert outcome.changed
    assert outcome.summary.status == "failed"
    saga = {row.name: row.status for row in outcome.summary.saga}
    assert saga["release_inventory"] == "compensated"
    again = retry_order("stuck-1")
    assert not again.changed and "only needs_attention is retried" in again.message
    assert_audit_clean()


def test_a_retry_restates_only_its_own_compensation_failures(prefect_server, monkeypatch):
    monkeypatch.setenv("FAIL_AT", "warehouse,release")
    stuck = place(order_id="stuck-2")
    cause, failed = stuck.failure_reason.split(" | compensation failed: ")
    assert cause.startswith("InjectedFault: injected failure at warehouse")
    assert failed.startswith("release_inventory: ")

    still = retry_order("stuck-2").summary  # fails again: named once, not appended
    assert still.status == "needs_attention"
    assert still.failure_reason.count("compensation failed") == 1
    assert still.failure_reason.startswith(f"{cause} | compensation failed: release_inventory: ")

    monkeypatch.delenv("FAIL_AT")
    done = retry_order("stuck-2").summary
    assert done.status == "failed"
    assert done.failure_reason == cause  # no compensation failed in the end
    assert_audit_clean()


@pytest.mark.e2e
def test_reconcile_cli_retry_and_bad_input(prefect_server):
    env = child_env(prefect_server)
    bad = run_module("flows.reconcile", "--stale-after", "-1", env=env, timeout=60)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1
    missing = run_module("flows.reconcile", "--retry", "ghost", env=env, timeout=60)
    assert missing.returncode == 2
    assert "order 'ghost' not found" in missing.stderr
    sweep = run_module("flows.reconcile", env=env, timeout=60)
    assert sweep.returncode == 0
    assert json.loads(sweep.stdout) == {"swept": 0, "stale_after": 60.0, "orders": {}}
