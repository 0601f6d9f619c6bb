"""Drivers racing for the same orders: two batches on one file, a batch and the intake on the
same ids. Whoever loses a race leaves the order alone; no completed order is ever undone
unless a cancel was requested."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from deployments.processes import stop
from flows.fulfill import order_summary, record_order
from flows.saga import settle_order
from storage import saga_log
from storage.db import session_scope
from storage.models import OrderCreate
from tests.deployments.helpers import start_intake
from tests.flows.helpers import (
    assert_side_effects_once,
    order_line,
    orders_by_id,
    place,
    wait_until,
    write,
)
from tests.support import PYTHON, ROOT, assert_audit_clean, child_env

COUNT = 80  # SKU-003 has 50 units: the test receives more


def start_batch(api_url: str, path: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [PYTHON, "-m", "flows.batch", str(path), "--json"],
        env=child_env(api_url),
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finished(batch: subprocess.Popen[str]) -> dict:
    out, err = batch.communicate(timeout=300)
    assert batch.returncode in (0, 4), err[-2000:]  # 4: an order another driver still held
    return json.loads(out.strip().splitlines()[-1])


def assert_every_order_completed_once(order_ids: list[str]) -> None:
    rows = orders_by_id()
    for oid in order_ids:
        summary = order_summary(oid)
        assert summary.status == "completed", summary
        assert summary.compensations == [], summary
        assert rows[oid].cancel_requested is False
    assert_side_effects_once(set(order_ids))
    assert_audit_clean()


def stocked_file(tmp_path: Path) -> tuple[Path, list[str]]:
    from storage import operations

    with session_scope() as session:
        operations.receive_stock(session, product_id="SKU-003", quantity=COUNT)
    order_ids = [f"race-{i:03d}" for i in range(COUNT)]
    return write(tmp_path / "orders.jsonl", [order_line(oid) for oid in order_ids]), order_ids


@pytest.mark.e2e
@pytest.mark.usefixtures("database")
def test_two_batches_on_one_file_never_undo_a_completed_order(prefect_server, tmp_path):
    path, order_ids = stocked_file(tmp_path)
    batches = [start_batch(prefect_server, path) for _ in range(2)]
    summaries = [finished(batch) for batch in batches]

    assert_every_order_completed_once(order_ids)
    for summary in summaries:
        assert set(summary["statuses"]) <= {"completed", "handed_over"}, summary


@pytest.mark.e2e
@pytest.mark.usefixtures("database")
def test_a_batch_racing_the_intake_on_the_same_ids_never_undoes_an_order(prefect_server, tmp_path):
    path, order_ids = stocked_file(tmp_path)
    for oid in order_ids:  # recorded already (say, by POST /orders), nobody holds them
        record_order(
            OrderCreate(
                product_id="SKU-003",
                quantity=1,
                customer_id=f"cust-{oid}",
                payment_method="tok_visa",
                order_id=oid,
            )
        )
    (tmp_path / "intake").mkdir()
    intake = start_intake(child_env(prefect_server), tmp_path / "intake")
    try:
        summary = finished(start_batch(prefect_server, path))
        wait_until(
            lambda: {order_summary(oid).status for oid in order_ids} == {"completed"},
            "every order to complete",
        )
    finally:
        stop([intake])
    assert_every_order_completed_once(order_ids)
    assert set(summary["statuses"]) <= {"completed", "handed_over"}, summary


@pytest.mark.usefixtures("db")
def test_a_driver_with_a_stale_view_leaves_a_completed_order_alone(prefect_server):
    """The root of the race: a driver that saw the order in progress settles it after another
    completed it. Only a requested cancel may unwind a completed order."""
    assert place(order_id="done").status == "completed"
    assert settle_order("done", "late-driver", task_run_id="late") is None
    summary = order_summary("done")
    assert (summary.status, summary.compensations) == ("completed", [])
    with session_scope() as session:
        assert saga_log.get_order(session, order_id="done").task_run_id != "late"
    assert_audit_clean()
