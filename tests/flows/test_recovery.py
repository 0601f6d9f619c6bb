"""Crash-proofing: SIGKILL at every boundary then a sweep; duplicate delivery; concurrent
sweeps. Every test ends with the audit clean."""

from __future__ import annotations

import json
import subprocess
import time
from datetime import timedelta

import pytest

from flows.fulfill import record_order
from flows.outcome import run_locally
from flows.reconcile import reconcile
from storage.models import OrderCreate, utcnow
from storage.views import SagaEventView
from tasks import steps
from tests.flows.helpers import (
    completions_per_step,
    engine_state,
    order_status,
    order_summary,
    spawn_order,
)
from tests.storage.helpers import cart
from tests.support import PYTHON, ROOT, assert_audit_clean, child_env

LEASE = "1"  # children's lease: a killed process's claim lapses after a second
STEP_POINTS = steps.undoable_points()
COMPENSATION_POINTS = steps.compensation_points()
ALL_COMPENSATIONS = ["revert_warehouse", "refund_payment", "release_inventory"]


def boundary_cases(prefix: str) -> dict[str, dict[str, str]]:
    """`{order id: env}`: a crash before and after every step, and before and after every
    compensation of an order failing at the warehouse."""
    cases = {
        f"{prefix}-{p}-{m}": {"CRASH_AT": f"{p}:{m}"}
        for p in STEP_POINTS
        for m in ("before", "after")
    }
    return cases | {
        f"{prefix}-{p}-{m}": {"CRASH_AT": f"{p}:{m}", "FAIL_AT": "warehouse"}
        for p in COMPENSATION_POINTS
        for m in ("before", "after")
    }


def crash_all(
    api_url: str, cases: dict[str, dict[str, str]], lines: list[str] | None = None
) -> None:
    """Run every case (an order of `lines`, if given) in its own process at once; each must
    die by SIGKILL."""
    procs = {
        oid: spawn_order(api_url, oid, lines=lines, FLOWFORGE_LEASE_SECONDS=LEASE, **env)
        for oid, env in cases.items()
    }
    for oid, proc in procs.items():
        _, err = proc.communicate(timeout=180)
        assert proc.returncode == -9, f"{oid} was not killed: {proc.returncode} {err[-1500:]}"
    time.sleep(float(LEASE) + 0.2)


def assert_nothing_doubled() -> None:
    state = engine_state()
    keys = [p["idempotency_key"] for p in state["payments"]]
    assert len(keys) == len(set(keys))
    warehouse_orders = [w["order_id"] for w in state["warehouse"]]
    assert len(warehouse_orders) == len(set(warehouse_orders))


@pytest.mark.e2e
@pytest.mark.usefixtures("database")
def test_crash_at_every_boundary_then_sweep(prefect_server):
    cases = boundary_cases("crash")
    crash_all(prefect_server, cases)
    assert all(order_status(oid) in {"running", "compensating"} for oid in cases)

    summary = run_locally(reconcile, stale_after=0)
    assert summary["swept"] == len(cases)

    for oid in cases:
        result = order_summary(oid)
        if oid.split("-")[1] in STEP_POINTS:  # resumed forward, nothing redone twice
            assert result.status == "completed", result
            assert result.compensations == []
        else:  # compensation was under way: finished, in reverse order
            assert result.status == "failed", result
            assert result.compensations == ALL_COMPENSATIONS
        assert all(n == 1 for n in completions_per_step(result).values()), result.events
    assert_nothing_doubled()
    assert_audit_clean()


@pytest.mark.e2e
@pytest.mark.usefixtures("database")
def test_duplicate_delivery_at_once_and_in_a_row(prefect_server):
    procs = [spawn_order(prefect_server, "dup-1") for _ in range(2)]
    outputs = [(proc.communicate(timeout=120), proc.returncode) for proc in procs]
    codes = sorted(code for _, code in outputs)
    assert codes in ([0, 0], [0, 4]), outputs
    final = order_summary("dup-1")
    assert final.status == "completed"
    again = spawn_order(prefect_server, "dup-1")
    out, _ = again.communicate(timeout=120)
    assert again.returncode == 0
    assert json.loads(out)["events"] == final.model_dump(mode="json")["events"]
    state = engine_state()
    assert len(state["payments"]) == 1
    assert len(state["warehouse"]) == 1
    sku = next(p for p in state["inventory"] if p["product_id"] == "SKU-003")
    assert sku["reserved"] == 2
    assert_audit_clean()


@pytest.mark.e2e
@pytest.mark.parametrize("database", ["sqlite"], indirect=True)  # PostgreSQL: test_scale_out
@pytest.mark.usefixtures("database")
def test_two_sweeps_at_once_finish_each_order_once(prefect_server):
    cases = {f"sweep-{i}": {"CRASH_AT": "payment:after"} for i in range(4)}
    cases |= {
        f"sweep-c{i}": {"CRASH_AT": "refund:before", "FAIL_AT": "warehouse"} for i in range(2)
    }
    crash_all(prefect_server, cases)
    sweeps = [
        subprocess.Popen(
            [PYTHON, "-m", "flows.reconcile", "--stale-after", "0"],
            env=child_env(prefect_server),
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    finished: list[str] = []
    for sweep in sweeps:
        out, err = sweep.communicate(timeout=180)
        assert sweep.returncode == 0, err[-2000:]
        tally = json.loads(out)["orders"]
        finished += [oid for status, ids in tally.items() if status != "skipped" for oid in ids]
    assert sorted(finished) == sorted(cases)  # each order finished by exactly one sweep
    for oid in cases:
        result = order_summary(oid)
        assert result.status == ("completed" if "c" not in oid.split("-")[1] else "failed")
        assert all(n == 1 for n in completions_per_step(result).values())
    assert_nothing_doubled()
    assert_audit_clean()


@pytest.mark.e2e
@pytest.mark.usefixtures("database")
def test_sweep_leaves_live_orders_alone(prefect_server):
    proc = spawn_order(prefect_server, "slow-1", FAIL_AT="payment:1", FLOWFORGE_RETRY_DELAYS="4")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if any(e.status == "failed" for e in order_summary_or_empty("slow-1")):
            break
        time.sleep(0.1)
    summary = run_locally(reconcile, stale_after=0)
    assert summary["swept"] == 0
    proc.communicate(timeout=60)
    assert proc.returncode == 0
    assert order_status("slow-1") == "completed"
    assert_audit_clean()


def order_summary_or_empty(order_id: str) -> list[SagaEventView]:
    try:
        return order_summary(order_id).events or []
    except LookupError:
        return []


@pytest.mark.usefixtures("database", "prefect_server")
def test_a_process_that_lost_its_lease_changes_nothing():
    from storage import saga_log
    from storage.db import session_scope
    from storage.errors import LeaseLost
    from storage.models import Order
    from tasks.inventory import reserve_inventory
    from tasks.payment import process_payment

    record_order(
        OrderCreate(
            product_id="SKU-001",
            quantity=2,
            customer_id="c",
            payment_method="tok_visa",
            order_id="stolen-1",
        )
    )
    with session_scope() as session:
        assert saga_log.acquire_lease(session, order_id="stolen-1", owner="A", lease_seconds=60)
        session.get(Order, "stolen-1").lease_expires_at = utcnow() - timedelta(seconds=1)
    with session_scope() as session:  # A's lease lapsed; B takes the order over
        assert saga_log.acquire_lease(session, order_id="stolen-1", owner="B", lease_seconds=60)
    before = engine_state()
    with pytest.raises(LeaseLost):
        reserve_inventory.fn("stolen-1", "A", lines=cart(("SKU-001", 2)))
    with pytest.raises(LeaseLost):
        process_payment.fn(
            "stolen-1",
            "A",
            lines=cart(("SKU-001", 2)),
            payment_method="tok_visa",
            customer_id="c",
        )
    assert engine_state() == before
