"""Orders with several lines: the cart is checked, reserved, charged, shipped and undone as one
saga; overlapping carts over scarce stock never oversell nor deadlock; a crash at any boundary
of a cart is finished by the sweep. Every test ends with the audit clean."""

from __future__ import annotations

import threading
from collections import Counter

import pytest

from flows.outcome import run_locally
from flows.reconcile import reconcile
from storage import operations
from storage.db import session_scope
from tests.flows.helpers import engine_state, order_summary, place, spawn_order
from tests.flows.test_recovery import (
    ALL_COMPENSATIONS,
    STEP_POINTS,
    boundary_cases,
    crash_all,
)
from tests.storage.helpers import cart
from tests.support import assert_audit_clean

THREE = [("SKU-001", 2), ("SKU-002", 1), ("SKU-003", 4)]  # at 1000 cents a unit: 7000


def stock() -> dict[str, tuple[int, int]]:
    """(available, reserved) by product."""
    return {p["product_id"]: (p["available"], p["reserved"]) for p in engine_state()["inventory"]}


def shipment(order_id: str) -> list[tuple[str, int, str]]:
    return sorted(
        (w["product_id"], w["quantity"], w["status"])
        for w in engine_state()["warehouse"]
        if w["order_id"] == order_id
    )


pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("prefect_server", "database")]


def test_a_three_line_order_completes_with_one_charge_and_one_shipment():
    result = place(lines=THREE, order_id="cart-3")
    assert result.status == "completed", result.failure_reason
    assert [(line.product_id, line.quantity) for line in result.lines] == THREE
    assert (result.product_id, result.quantity, result.amount) == ("SKU-001", 7, 7000)
    assert stock() == {"SKU-001": (23, 2), "SKU-002": (9, 1), "SKU-003": (46, 4)}
    payments = engine_state()["payments"]
    assert [(p["order_id"], p["amount"], p["status"]) for p in payments] == [
        ("cart-3", 7000, "charged")
    ]
    assert shipment("cart-3") == [(p, q, "applied") for p, q in THREE]
    assert_audit_clean()


def test_a_cart_whose_third_line_is_out_of_stock_is_refused_before_anything_happens():
    before = engine_state()
    result = place(lines=[("SKU-001", 2), ("SKU-003", 1), ("SKU-002", 11)])
    assert result.status == "failed"
    assert result.failure_point == "check_inventory"
    assert (
        result.failure_reason
        == "line 3: insufficient stock for SKU-002: requested 11, available 10"
    )
    assert result.compensations == []
    after = engine_state()
    assert (after["inventory"], after["payments"], after["warehouse"]) == (
        before["inventory"],
        [],
        [],
    )
    assert_audit_clean()


def test_a_cart_with_an_unknown_product_fails_naming_its_line():
    result = place(lines=[("SKU-001", 1), ("SKU-404", 1)])
    assert (result.status, result.failure_point) == ("failed", "check_inventory")
    assert result.failure_reason == "line 2: unknown product 'SKU-404'"
    assert_audit_clean()


def test_a_failing_warehouse_undoes_every_line_in_reverse_order(monkeypatch):
    monkeypatch.setenv("FAIL_AT", "warehouse")
    result = place(lines=THREE, order_id="cart-undone")
    assert result.status == "failed"
    assert result.compensations == ["revert_warehouse", "refund_payment", "release_inventory"]
    assert stock() == {"SKU-001": (25, 0), "SKU-002": (10, 0), "SKU-003": (50, 0)}
    assert [(p["amount"], p["status"]) for p in engine_state()["payments"]] == [(7000, "refunded")]
    assert shipment("cart-undone") == [(p, q, "reverted") for p, q in THREE]
    assert_audit_clean()


def test_a_cancelled_cart_gives_back_every_line():
    from flows.cancel import cancel

    assert place(lines=THREE, order_id="cart-cancel").status == "completed"
    assert cancel("cart-cancel").changed
    result = order_summary("cart-cancel")
    assert result.status == "cancelled"
    assert result.compensations == ALL_COMPENSATIONS
    assert stock() == {"SKU-001": (25, 0), "SKU-002": (10, 0), "SKU-003": (50, 0)}
    assert_audit_clean()


def test_overlapping_carts_over_scarce_stock_never_oversell(database):
    """Twelve threads, each a cart of two of three scarce products in a different order."""
    with session_scope() as session:
        for product in ("SCARCE-A", "SCARCE-B", "SCARCE-C"):
            operations.receive_stock(session, product_id=product, quantity=5, unit_price=100)
    pairs = [("SCARCE-A", "SCARCE-B"), ("SCARCE-C", "SCARCE-A"), ("SCARCE-B", "SCARCE-C")]
    carts = [[(first, 1), (second, 1)] for first, second in pairs] * 4
    results: dict[int, str] = {}
    errors: list[BaseException] = []

    def buy(n: int) -> None:
        try:
            results[n] = place(lines=carts[n], order_id=f"scarce-{n:02d}").status
        except BaseException as exc:  # reported below: a deadlock would land here
            errors.append(exc)

    threads = [threading.Thread(target=buy, args=(n,)) for n in range(len(carts))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert errors == []
    assert set(results.values()) <= {"completed", "failed"}
    sold = Counter()
    for n, status in results.items():
        if status == "completed":
            sold.update(product for product, _ in carts[n])
    scarce = {p: s for p, s in stock().items() if p.startswith("SCARCE")}
    assert {p: (5 - sold[p], sold[p]) for p in scarce} == scarce
    assert all(units <= 5 for units in sold.values())
    assert sum(sold.values()) >= 10  # stock ran out: at most one unit per product unsold
    assert_audit_clean()


def test_a_crash_at_every_boundary_of_a_cart_is_finished_by_the_sweep(prefect_server):
    lines = ["SKU-001:1", "SKU-003:2"]
    cases = boundary_cases("cart")
    crash_all(prefect_server, cases, lines=lines)
    assert run_locally(reconcile, stale_after=0)["swept"] == len(cases)
    for oid in cases:
        result = order_summary(oid)
        forward = oid.split("-")[1] in STEP_POINTS
        assert result.status == ("completed" if forward else "failed"), result
        assert result.compensations == ([] if forward else ALL_COMPENSATIONS)
        assert shipment(oid) == [
            ("SKU-001", 1, "applied" if forward else "reverted"),
            ("SKU-003", 2, "applied" if forward else "reverted"),
        ]
    completed = sum(1 for oid in cases if order_summary(oid).status == "completed")
    assert stock()["SKU-003"] == (50 - 2 * completed, 2 * completed)
    assert_audit_clean()


@pytest.mark.postgres
@pytest.mark.parametrize("database", ["postgresql"], indirect=True)
def test_processes_racing_overlapping_carts_on_postgres(prefect_server):
    """Eight processes, carts of SKU-002 (10 units) with SKU-001 or SKU-003, lines in
    opposite orders: exactly ten units of SKU-002 sold, no deadlock, nothing stuck."""
    carts = [["SKU-002:2", "SKU-001:1"], ["SKU-003:1", "SKU-002:2"]] * 4
    procs = [spawn_order(prefect_server, lines=lines) for lines in carts]
    codes = [proc.wait(timeout=240) for proc in procs]
    errors = [proc.stderr.read() for proc in procs if proc.returncode not in (0, 1)]
    assert errors == [], codes
    orders = engine_state()["orders"]
    assert Counter(o["status"] for o in orders) == {"completed": 5, "failed": 3}
    assert stock()["SKU-002"] == (0, 10)
    assert all(
        "insufficient stock for SKU-002" in o["failure_reason"]
        for o in orders
        if o["status"] == "failed"
    )
    assert_audit_clean()


def test_reserving_a_cart_holds_every_line_or_none(database):
    """The operation itself, in one transaction: a line short of stock holds nothing."""
    with session_scope() as session, pytest.raises(Exception, match="line 2"):
        operations.reserve_stock(session, order_id="x", lines=cart(("SKU-001", 3), ("SKU-002", 99)))
    assert stock()["SKU-001"] == (25, 0)
