"""The dashboard under Streamlit's AppTest, on databases filled by real sagas."""

from __future__ import annotations

import math
import threading
from datetime import datetime

import pytest
from streamlit.testing.v1 import AppTest

from bench.factory import fill_orders
from dashboard.style import money_text
from flows.fulfill import order_summary, record_order
from storage.models import OrderCreate
from tasks.steps import step_names
from tests.dashboard.conftest import Filled
from tests.dashboard.helpers import kpis, markdown, render, rerun, table
from tests.flows.helpers import engine_state, place
from tests.support import assert_audit_clean

STEPS = step_names()
TERMINAL = ("completed", "failed", "needs_attention", "cancelled")


def nearest_rank(values: list[float], quantile: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(quantile * len(ordered)) - 1)]


def seconds(text: str) -> float:
    """A latency KPI back in seconds: '542 ms', '2.33 s' or '1.5 min'."""
    number, unit = text.split()
    return float(number) * {"ms": 0.001, "s": 1, "min": 60}[unit]


def expected_kpis() -> dict[str, str | float]:
    """The KPIs and money totals, computed from the database's snapshot."""
    state = engine_state()
    statuses = [o["status"] for o in state["orders"]]
    latencies = [
        (
            datetime.fromisoformat(o["finished_at"]) - datetime.fromisoformat(o["created_at"])
        ).total_seconds()
        for o in state["orders"]
        if o["finished_at"]
    ]
    finished = sum(statuses.count(s) for s in TERMINAL)
    charged = sum(p["amount"] for p in state["payments"])
    refunded = sum(p["amount"] for p in state["payments"] if p["status"] == "refunded")
    return {
        "Orders": str(len(statuses)),
        "Completed": str(statuses.count("completed")),
        "Failed (compensated)": str(statuses.count("failed")),
        "Needs attention": str(statuses.count("needs_attention")),
        "Cancelled": str(statuses.count("cancelled")),
        "In progress": str(len(statuses) - finished),
        "Success rate": f"{statuses.count('completed') / finished:.1%}",
        "Latency p50": nearest_rank(latencies, 0.5),
        "Latency p95": nearest_rank(latencies, 0.95),
        "Charged": money_text(charged),
        "Refunded": money_text(refunded),
        "Net": money_text(charged - refunded),
    }


def assert_kpis_equal_the_database(page: AppTest) -> None:
    shown, expected = kpis(page), expected_kpis()
    for latency in ("Latency p50", "Latency p95"):  # SQLite's julianday() keeps milliseconds
        assert seconds(shown.pop(latency)) == pytest.approx(expected.pop(latency), abs=0.006)
    assert shown == expected


def test_kpis_equal_the_database(filled: Filled):
    page = render()
    assert_kpis_equal_the_database(page)
    assert kpis(page)["Orders"] == str(len(filled.orders))
    assert (kpis(page)["Completed"], kpis(page)["Needs attention"]) == ("3", "1")
    assert any("audit clean" in text for text in markdown(page))


def test_orders_table_is_newest_first_and_filters(filled: Filled):
    page = render()
    newest = table(page, "customer_id")
    assert list(newest["order_id"]) == [o.order_id for o in reversed(filled.orders.values())]
    page.multiselect(key="filter_status").select("failed")
    failed = table(rerun(page), "customer_id")
    assert set(failed["status"]) == {"failed"}
    assert len(failed) == sum(o.status == "failed" for o in filled.orders.values())
    wanted = filled.orders["warehouse"].order_id
    page.text_input(key="filter_search").input(wanted[-6:])
    assert list(table(rerun(page), "customer_id")["order_id"]) == [wanted]
    assert page.selectbox(key="picked_order").value == wanted


def saga_of(label: str, filled: Filled) -> tuple[AppTest, list[tuple[str, int, str]]]:
    """The page with the order of `label` picked, and its attempts table."""
    page = render()
    page.selectbox(key="picked_order").select(filled.orders[label].order_id)
    rerun(page)
    rows = table(page, "attempt")
    return page, list(zip(rows["step"], rows["attempt"], rows["outcome"], strict=True))


def test_an_order_shows_its_steps_then_its_compensations_in_order(filled: Filled):
    page, attempts = saga_of("warehouse", filled)
    undo = ["revert_warehouse", "refund_payment", "release_inventory"]
    assert f"**Steps:** {' → '.join(STEPS)}" in markdown(page)
    assert f"**Compensations, in the order they ran:** {' → '.join(undo)}" in markdown(page)
    assert attempts == [
        *[(step, 1, "completed") for step in STEPS[:3]],
        *[("update_warehouse", n, "failed") for n in (1, 2, 3, 4)],
        *[(name, 1, "compensated") for name in undo],
    ]
    assert [e.value for e in page.error][0].startswith("**update_warehouse**")
    flow_run = filled.orders["warehouse"].flow_run_id
    assert [link.proto.url for link in page.link_button][0].endswith(f"/runs/flow-run/{flow_run}")


def test_a_retried_step_shows_every_attempt(filled: Filled):
    page, attempts = saga_of("retried", filled)
    assert [(a, o) for s, a, o in attempts if s == "process_payment"] == [
        (1, "failed"),
        (2, "completed"),
    ]
    assert not any(text.startswith("**Compensations, in the order") for text in markdown(page))


def test_empty_database_renders_a_friendly_page(db):
    page = render()
    assert kpis(page)["Orders"] == "0"
    assert kpis(page)["Success rate"] == "—"
    assert "No orders yet" in page.info[0].value
    assert [button.label for button in page.button] == ["Place order"]
    assert page.toggle(key="auto_refresh").value is True
    page.toggle(key="auto_refresh").set_value(False)
    assert rerun(page).select_slider(key="refresh_seconds").disabled


def test_ten_thousand_orders_render(db):
    fill_orders(10_000)
    page = render()
    assert kpis(page)["Orders"] == "10000"
    assert kpis(page)["Needs attention"] == "500"
    assert len(table(page, "customer_id")) == 25
    assert any("audit clean" in text for text in markdown(page))
    page.pagination(key="orders_page").select(400)
    assert list(table(rerun(page), "customer_id")["order_id"])[-1] == "bulk-000000"
    page.multiselect(key="filter_status").select("needs_attention")  # 20 pages: back to the last
    assert set(table(rerun(page), "customer_id")["status"]) == {"needs_attention"}
    assert "500 orders · page 20 of 20" in [caption.value for caption in page.caption]


@pytest.mark.usefixtures("prefect_server", "db")
def test_retry_settles_a_needs_attention_order_once_the_fault_is_gone(monkeypatch):
    monkeypatch.setenv("FAIL_AT", "warehouse,refund")
    order_id = place().order_id
    assert order_summary(order_id).status == "needs_attention"
    monkeypatch.delenv("FAIL_AT")
    page = render()
    assert kpis(page)["Needs attention"] == "1"
    page.button(key=f"retry-{order_id}").click()
    rerun(page)
    assert order_summary(order_id).status == "failed"
    assert kpis(page)["Needs attention"] == "0"
    assert order_id in page.success[0].value  # the retry's own message
    assert_audit_clean()


@pytest.mark.usefixtures("prefect_server", "db")
def test_cancel_compensates_a_completed_order():
    order_id = place().order_id
    page = render()
    page.button(key=f"cancel-{order_id}").click()
    rerun(page)
    summary = order_summary(order_id)
    assert summary.status == "cancelled"
    assert summary.compensations == ["revert_warehouse", "refund_payment", "release_inventory"]
    assert kpis(page)["Cancelled"] == "1"
    assert_audit_clean()


@pytest.mark.usefixtures("prefect_server", "db")
def test_place_an_order_with_an_injected_fault(monkeypatch):
    monkeypatch.setenv("FLOWFORGE_ALLOW_FAULTS", "1")
    page = render()
    page.number_input(key="new_quantity").set_value(2)
    page.selectbox(key="new_fault").select("payment")
    page.button[0].click()  # the form's submit button
    rerun(page)
    order_id = page.success[0].value.split()[1]
    for runner in threading.enumerate():  # the saga runs in a thread of the page's process
        if runner.name == f"order-{order_id}":
            runner.join(timeout=60)
    summary = order_summary(order_id)
    assert (summary.status, summary.failure_point) == ("failed", "process_payment")
    assert summary.compensations == ["refund_payment", "release_inventory"]
    assert_audit_clean()


def test_kpis_on_postgresql(pg_db):
    fill_orders(200)
    page = render()
    assert_kpis_equal_the_database(page)
    assert kpis(page)["Latency p95"] != "—"


def test_picked_order_stays_picked_when_new_orders_push_it_off_the_page(db):
    fill_orders(25)
    page = render()
    page.selectbox(key="picked_order").select("bulk-000000")
    assert rerun(page).selectbox(key="picked_order").value == "bulk-000000"
    record_order(
        OrderCreate(product_id="SKU-001", quantity=1, customer_id="late", payment_method="t")
    )
    picked = rerun(page).selectbox(key="picked_order")
    assert picked.value == "bulk-000000"
    assert page.button(key="cancel-bulk-000000").label == "Yes, cancel bulk-000000"


def ran_in_the_page(order_id: str) -> None:
    """Wait for the page's background thread that runs the order's saga."""
    for runner in threading.enumerate():
        if runner.name == f"order-{order_id}":
            runner.join(timeout=60)


@pytest.mark.usefixtures("prefect_server", "db")
def test_place_a_cart_and_see_its_lines(monkeypatch):
    monkeypatch.setenv("FLOWFORGE_ALLOW_FAULTS", "1")  # with a fault, the page runs the saga
    page = render()
    page.selectbox(key="new_product").select("SKU-002")
    page.number_input(key="new_quantity").set_value(2)
    page.text_input(key="new_more_lines").input("SKU-003:1, SKU-001:3")
    page.selectbox(key="new_fault").select("payment:1")  # the retry succeeds
    page.button[0].click()
    rerun(page)
    order_id = page.success[0].value.split()[1]
    ran_in_the_page(order_id)
    summary = order_summary(order_id)
    assert summary.status == "completed"
    assert [(line.product_id, line.quantity) for line in summary.lines] == [
        ("SKU-002", 2),
        ("SKU-003", 1),
        ("SKU-001", 3),
    ]
    rows = table(rerun(page), "customer_id")
    assert list(rows["lines"]) == ["2 x SKU-002, 1 x SKU-003, 3 x SKU-001"]
    page.multiselect(key="filter_product").select("SKU-001")  # a line, not the first one
    assert list(table(rerun(page), "customer_id")["order_id"]) == [order_id]
    assert_audit_clean()


@pytest.mark.parametrize(
    ("more", "reason"),
    [
        ("SKU-003", "more lines: 'SKU-003' is not PRODUCT:UNITS"),
        ("SKU-001:1", "line 2: product_id 'SKU-001' is already line 1"),
    ],
)
def test_a_bad_cart_in_the_form_places_nothing(db, more, reason):
    page = render()
    page.selectbox(key="new_product").select("SKU-001")
    page.text_input(key="new_more_lines").input(more)
    page.button[0].click()
    rerun(page)
    assert reason in page.error[0].value
    assert engine_state()["orders"] == []
