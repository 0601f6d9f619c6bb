"""The order saga through a real Prefect server: happy path, every fault point, retries,
failing compensations and refusals. Every test ends with the audit clean."""

from __future__ import annotations

import pytest

from tasks.steps import step_names
from tests.flows.helpers import attempts_of, engine_state, flow_run_state_name, place
from tests.support import assert_audit_clean

STEPS = step_names()

pytestmark = pytest.mark.usefixtures("prefect_server", "database")


def stock(product_id: str = "SKU-001") -> tuple[int, int]:
    item = next(p for p in engine_state()["inventory"] if p["product_id"] == product_id)
    return item["available"], item["reserved"]


def test_happy_path():
    result = place(quantity=3)
    assert result.status == "completed"
    assert result.steps_completed == STEPS
    assert result.compensations == []
    assert result.compensation_triggered is False
    assert [(e.step, e.status) for e in result.events] == [
        (step, status) for step in STEPS for status in ("started", "completed")
    ]
    state = engine_state()
    assert [(p["amount"], p["status"]) for p in state["payments"]] == [(3000, "charged")]
    assert [(w["quantity"], w["status"]) for w in state["warehouse"]] == [(3, "applied")]
    assert stock() == (22, 3)
    assert flow_run_state_name(result.flow_run_id) == "Completed"
    assert_audit_clean()


@pytest.mark.parametrize(
    ("point", "failed_step", "compensations"),
    [
        ("inventory-check", "check_inventory", []),
        ("inventory", "reserve_inventory", ["release_inventory"]),
        ("payment", "process_payment", ["refund_payment", "release_inventory"]),
        (
            "warehouse",
            "update_warehouse",
            ["revert_warehouse", "refund_payment", "release_inventory"],
        ),
    ],
)
def test_permanent_fault_is_compensated(monkeypatch, point, failed_step, compensations):
    monkeypatch.setenv("FAIL_AT", point)
    result = place()
    assert result.status == "failed"
    assert result.compensations == compensations
    assert result.compensation_triggered is bool(compensations)
    assert result.failure_point == failed_step
    assert f"injected failure at {point}" in result.failure_reason
    assert failed_step not in result.steps_completed
    assert [a for s, a in attempts_of(result, failed_step) if s == "failed"] == [1, 2, 3, 4]
    state = engine_state()
    assert stock() == (25, 0)
    assert all(p["status"] == "refunded" for p in state["payments"])
    assert all(w["status"] == "reverted" for w in state["warehouse"])
    if compensations:
        assert flow_run_state_name(result.flow_run_id) == "Compensated"
    assert_audit_clean()


@pytest.mark.parametrize(
    ("point", "step"),
    [
        ("inventory-check", "check_inventory"),
        ("inventory", "reserve_inventory"),
        ("payment", "process_payment"),
        ("warehouse", "update_warehouse"),
    ],
)
def test_transient_fault_is_retried(monkeypatch, point, step):
    monkeypatch.setenv("FAIL_AT", f"{point}:1")
    result = place()
    assert result.status == "completed"
    assert result.steps_completed == STEPS
    assert result.compensations == []
    assert attempts_of(result, step) == [
        ("started", 1),
        ("failed", 1),
        ("started", 2),
        ("completed", 2),
    ]
    state = engine_state()
    assert [(p["amount"], p["status"]) for p in state["payments"]] == [(2000, "charged")]
    assert len(state["warehouse"]) == 1
    assert stock() == (23, 2)
    assert_audit_clean()


def test_failing_compensation_needs_attention_and_others_still_run(monkeypatch):
    monkeypatch.setenv("FAIL_AT", "warehouse,refund")
    result = place()
    assert result.status == "needs_attention"
    assert result.compensations == ["revert_warehouse", "refund_payment", "release_inventory"]
    assert "refund_payment" in result.failure_reason
    saga = {row.name: row.status for row in result.saga}
    assert saga["refund_payment"] == "failed"
    assert saga["revert_warehouse"] == saga["release_inventory"] == "compensated"
    # FAIL_AT fails right after the side effect: the refund went through, its task did not
    # report success, so a person must look; the other compensations ran regardless.
    assert [w["status"] for w in engine_state()["warehouse"]] == ["reverted"]
    assert stock() == (25, 0)
    assert flow_run_state_name(result.flow_run_id) == "NeedsAttention"
    assert_audit_clean()


def test_compensation_retry_recovers(monkeypatch):
    monkeypatch.setenv("FAIL_AT", "warehouse,refund:2")
    result = place()
    assert result.status == "failed"
    assert attempts_of(result, "refund_payment") == [
        ("compensating", 1),
        ("failed", 1),
        ("compensating", 2),
        ("failed", 2),
        ("compensating", 3),
        ("compensated", 3),
    ]
    assert [p["status"] for p in engine_state()["payments"]] == ["refunded"]
    assert_audit_clean()


@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [
        ({"product_id": "SKU-404"}, "unknown product 'SKU-404'"),
        ({"product_id": "SKU-002", "quantity": 11}, "insufficient stock for SKU-002"),
    ],
)
def test_refused_order_fails_without_side_effects(kwargs, reason):
    before = engine_state()
    result = place(**kwargs)
    assert result.status == "failed"
    assert reason in result.failure_reason
    assert result.failure_point == "check_inventory"
    assert result.compensations == []
    assert attempts_of(result, "check_inventory") == [("started", 1), ("failed", 1)]
    after = engine_state()
    assert (after["inventory"], after["payments"], after["warehouse"]) == (
        before["inventory"],
        [],
        [],
    )
    assert_audit_clean()


def test_declined_card_is_not_retried_and_stock_is_released():
    result = place(payment_method="tok_declined_insufficient_funds")
    assert result.status == "failed"
    assert "card declined" in result.failure_reason
    assert attempts_of(result, "process_payment") == [("started", 1), ("failed", 1)]
    assert result.compensations == ["release_inventory"]
    assert engine_state()["payments"] == []
    assert stock() == (25, 0)
    assert_audit_clean()


def test_rerun_of_finished_order_changes_nothing():
    first = place(order_id="ord-rerun")
    before = engine_state()
    again = place(order_id="ord-rerun")
    assert again == first
    assert engine_state() == before
    assert_audit_clean()
