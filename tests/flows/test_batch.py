"""The batch (`python -m flows.batch FILE --json`): bad lines reported and skipped, JSONL and
CSV, a file run twice charges nobody twice, FAIL_AT compensates exactly the failing orders."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from prefect import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

from flows.batch import derived_order_id
from flows.fulfill import order_summary
from tests.flows.helpers import engine_state, order_line, orders_by_id, ran_once, run_batch, write
from tests.support import assert_audit_clean, run_module

ALL_COMPENSATIONS = ["revert_warehouse", "refund_payment", "release_inventory"]


def assert_only_orders(expected: set[str]) -> None:
    """The orders table holds exactly these orders, each completed."""
    rows = orders_by_id()
    assert set(rows) == expected
    assert {row.status for row in rows.values()} == {"completed"}


@pytest.mark.usefixtures("db")
def test_jsonl_bad_lines_are_reported_and_skipped(prefect_server, tmp_path):
    lines = [
        order_line("good-1"),
        "this is not JSON",
        order_line(None, customer_id="cust-derived"),  # no id: derived from the line
        "[1, 2, 3]",
        order_line("bad-bool", quantity=True),
        order_line("bad-missing", payment_method=None),
        order_line("bad-unknown", color="red"),
        order_line("order-good-1"),  # the workflow id of good-1: a different order
        order_line("good-2", product_id="SKU-001", quantity=2),
    ]
    path = write(tmp_path / "orders.jsonl", lines)
    code, summary, err = run_batch(prefect_server, path)
    assert code == 1, err[-2000:]

    reasons = {bad["line"]: bad["error"] for bad in summary["bad_lines"]}
    assert sorted(reasons) == [2, 4, 5, 6, 7, 8]
    assert summary["bad_line_count"] == 6
    assert "not an order" in reasons[2]
    assert "not an order" in reasons[4]
    assert reasons[5].startswith("quantity:")
    assert reasons[6].startswith("payment_method:")
    assert reasons[7].startswith("color:")
    assert "good-1" in reasons[8] and "already used" in reasons[8]

    assert summary["statuses"] == {"completed": 3}
    assert (summary["orders"], summary["already_settled"]) == (3, 0)
    assert summary["unfinished"] == []
    assert_only_orders({"good-1", "good-2", derived_order_id(3, lines[2])})
    assert_audit_clean()


@pytest.mark.usefixtures("db")
def test_csv_with_a_header(prefect_server, tmp_path):
    path = write(
        tmp_path / "orders.csv",
        [
            "order_id,product_id,quantity,customer_id,payment_method",
            "csv-1,SKU-003,2,cust-1,tok_visa",
            "csv-2,SKU-003,two,cust-2,tok_visa",  # not a number
            "csv-3,SKU-003,1,cust-3",  # a column short
            "csv-4,SKU-001, 3 ,cust-4,tok_visa",
            "csv-5,SKU-003,1,,tok_visa",  # no customer
            ",SKU-002,1,cust-6,tok_visa",  # no id: derived from the line
        ],
    )
    code, summary, err = run_batch(prefect_server, path)
    assert code == 1, err[-2000:]
    reasons = {bad["line"]: bad["error"] for bad in summary["bad_lines"]}
    assert sorted(reasons) == [3, 4, 6]  # the header is line 1
    assert reasons[3].startswith("quantity:")
    assert "not an order" in reasons[4]
    assert reasons[6].startswith("customer_id:")
    assert summary["statuses"] == {"completed": 3}
    derived = derived_order_id(7, ",SKU-002,1,cust-6,tok_visa\n")
    assert_only_orders({"csv-1", "csv-4", derived})
    assert order_summary("csv-4").quantity == 3
    assert_audit_clean()


@pytest.mark.usefixtures("db")
def test_the_same_file_twice_charges_nobody_twice(prefect_server, tmp_path):
    lines = [order_line(f"twice-{i}") for i in range(4)]
    lines += [order_line(None, customer_id=f"anon-{i}") for i in range(3)]  # derived ids
    path = write(tmp_path / "twice.jsonl", lines)
    code, first, err = run_batch(prefect_server, path)
    assert code == 0, err[-2000:]
    assert first["statuses"] == {"completed": 7}
    charged = engine_state()["payments"]
    assert len(charged) == 7

    code, second, err = run_batch(prefect_server, path)
    assert code == 0, err[-2000:]
    assert (second["orders"], second["statuses"], second["already_settled"]) == (0, {}, 7)
    assert second["bad_line_count"] == 0
    assert engine_state()["payments"] == charged
    assert len(orders_by_id()) == 7
    assert_audit_clean()


@pytest.mark.usefixtures("db")
def test_fail_at_compensates_exactly_the_matching_orders(prefect_server, tmp_path):
    failing = [f"bf-{i}-fail" for i in range(3)]
    passing = [f"bf-{i}-ok" for i in range(4)]
    path = write(tmp_path / "faulty.jsonl", [order_line(oid) for oid in passing + failing])
    code, summary, err = run_batch(prefect_server, path, FAIL_AT="warehouse@*-fail")
    assert code == 1, err[-2000:]
    assert summary["statuses"] == {"completed": 4, "failed": 3}
    assert sorted(o["order_id"] for o in summary["unfinished"]) == failing
    for oid in failing:
        result = order_summary(oid)
        assert result.status == "failed", result
        assert result.compensations == ALL_COMPENSATIONS
    for oid in passing:
        result = order_summary(oid)
        assert (result.status, result.compensations) == ("completed", [])
    assert_audit_clean()
    timelines, tables = run_artifacts(order_summary(passing[0]).task_run_id)
    assert sorted(timelines) == [f"saga-{oid}" for oid in failing]  # none for a completed one
    [table] = tables
    rows = {row["order"]: row["status"] for row in json.loads(table.data)}
    assert rows == {oid: "completed" for oid in passing} | {oid: "failed" for oid in failing}


def run_artifacts(task_run_id: str) -> tuple[list[str], list[Any]]:
    """The markdown artifacts' keys and the table artifacts of the flow run holding a task run."""
    with get_client(sync_client=True) as client:
        flow_run_id = client.read_task_run(UUID(task_run_id)).flow_run_id
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]))
        )
    timelines = [a.key for a in artifacts if a.type == "markdown"]
    return timelines, [a for a in artifacts if a.type == "table"]


@pytest.mark.usefixtures("db")
def test_an_order_id_repeated_in_the_file_is_run_once(prefect_server, tmp_path):
    """Two lines with one order id are one order: driven by one task run, reported once."""
    lines = [order_line("rep-1"), order_line("rep-1"), order_line("rep-2")]
    code, summary, err = run_batch(prefect_server, write(tmp_path / "repeat.jsonl", lines))
    assert summary["statuses"] == {"completed": 2}, summary
    assert code in (0, 1), err[-2000:]  # 1 if the repeat is reported as a bad line
    for oid in ("rep-1", "rep-2"):
        assert ran_once(oid), order_summary(oid).events
    assert_audit_clean()


@pytest.mark.e2e
@pytest.mark.usefixtures("db")
def test_a_missing_file_is_one_line_and_exit_2(tmp_path):
    result = run_module("flows.batch", str(tmp_path / "nope.jsonl"), "--json")
    assert result.returncode == 2
    assert result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "nope.jsonl" in result.stderr


@pytest.mark.usefixtures("db")
def test_a_spreadsheet_csv_runs_past_its_odd_lines(prefect_server, tmp_path):
    """A BOM, a quoted newline, a superscript quantity and a 200 KB field are each one bad line
    (or none), never the end of the batch: the orders after them run too."""
    path = tmp_path / "sheet.csv"
    lines = [
        "\ufefforder_id,product_id,quantity,customer_id,payment_method",
        "s-1,SKU-003,1,cust-1,tok_visa",
        's-2,SKU-003,1,"cust-2',
        '",tok_visa',
        "s-3,SKU-003,²,cust-3,tok_visa",
        f"s-4,SKU-003,1,{'x' * 200_000},tok_visa",
        "s-5,SKU-003,1,cust-5,tok_visa",
    ]
    path.write_bytes("".join(f"{line}\r\n" for line in lines).encode())
    code, summary, err = run_batch(prefect_server, path)
    assert code == 1, err[-2000:]
    assert "Traceback" not in err, err[-2000:]
    reasons = {bad["line"]: bad["error"] for bad in summary["bad_lines"]}
    assert sorted(reasons) == [5, 6], reasons
    assert reasons[5].startswith("quantity:")
    assert reasons[6] == "not an order: over 131,072 characters"
    assert summary["statuses"] == {"completed": 3}
    assert_only_orders({"s-1", "s-2", "s-5"})
    assert order_summary("s-2").customer_id == "cust-2"
    assert_audit_clean()


@pytest.mark.e2e
@pytest.mark.usefixtures("db")
@pytest.mark.parametrize(
    ("make", "error"), [(Path.mkdir, "is a directory"), (os.mkfifo, "not a regular file")]
)
def test_a_path_that_is_not_a_file_is_one_line_and_exit_2(tmp_path, make, error):
    path = tmp_path / "orders.csv"
    make(path)
    result = run_module("flows.batch", str(path), "--json")
    assert result.returncode == 2
    assert result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert f"{path}: {error}" in result.stderr


@pytest.mark.usefixtures("db")
def test_carts_from_csv_rows_and_jsonl_lines_each_charge_once(prefect_server, tmp_path):
    csv_file = write(
        tmp_path / "carts.csv",
        [
            "order_id,product_id,quantity,customer_id,payment_method",
            "csv-cart,SKU-001,2,cust-1,tok_visa",
            "csv-cart,SKU-002,1,,",
            "csv-cart,SKU-003,3,,",
            "csv-one,SKU-003,1,cust-2,tok_visa",
        ],
    )
    cart = [{"product_id": "SKU-002", "quantity": 2}, {"product_id": "SKU-001", "quantity": 1}]
    jsonl_file = write(
        tmp_path / "carts.jsonl",
        [order_line("jsonl-cart", product_id=None, quantity=None, lines=cart)],
    )
    for path in (csv_file, jsonl_file, csv_file):  # the CSV twice: nobody charged twice
        code, summary, err = run_batch(prefect_server, path)
        assert code == 0, err[-2000:]
    assert summary["already_settled"] == 2
    assert_only_orders({"csv-cart", "csv-one", "jsonl-cart"})
    state = engine_state()
    charges = {p["order_id"]: p["amount"] for p in state["payments"]}
    assert charges == {"csv-cart": 6000, "csv-one": 1000, "jsonl-cart": 3000}
    shipped = sorted((w["order_id"], w["product_id"], w["quantity"]) for w in state["warehouse"])
    assert shipped == [
        ("csv-cart", "SKU-001", 2),
        ("csv-cart", "SKU-002", 1),
        ("csv-cart", "SKU-003", 3),
        ("csv-one", "SKU-003", 1),
        ("jsonl-cart", "SKU-001", 1),
        ("jsonl-cart", "SKU-002", 2),
    ]
    assert_audit_clean()
