"""End to end, once per session: a real Prefect server, the runner serving the deployments and
the intake in subprocesses, the API over real HTTP. Orders go in through the API, the intake
runs each as a task run, and they come out settled."""

from __future__ import annotations

import os
import subprocess
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from deployments.processes import Child, start, stop, wait_ready
from flows.fulfill import record_order, run_order
from storage.db import migrate_database
from storage.models import OrderCreate
from storage.settings import get_settings
from tests.deployments.helpers import (
    TERMINAL,
    post_order,
    start_api,
    start_intake,
    status_of,
    task_run_state,
    wait_until,
)
from tests.support import PYTHON, ROOT, assert_audit_clean, child_env

pytestmark = pytest.mark.e2e  # starts servers or processes


@pytest.fixture(scope="module")
def service(prefect_server: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The runner, the intake and the API on one database; yields the API's base URL."""
    db_path = tmp_path_factory.mktemp("service") / "flowforge.sqlite3"
    saved = os.environ.get("FLOWFORGE_DB_PATH")
    os.environ["FLOWFORGE_DB_PATH"] = str(db_path)
    get_settings.cache_clear()
    migrate_database()
    env = child_env(prefect_server, FLOWFORGE_DB_PATH=str(db_path))
    children: list[Child] = []
    try:
        runner = start("runner", "", [PYTHON, "-m", "deployments.serve"], env)
        children.append(runner)
        wait_ready(runner, f"{prefect_server}/deployments/name/fulfill-order/fulfill-order")
        children.append(start_intake(env, tmp_path_factory.mktemp("intake")))
        children.append(start_api(env))
        yield children[-1].url
    finally:
        stop(children)
        if saved is None:
            os.environ.pop("FLOWFORGE_DB_PATH", None)
        else:
            os.environ["FLOWFORGE_DB_PATH"] = saved
        get_settings.cache_clear()


def test_an_order_completes_as_a_task_run_of_the_intake(service):
    started = post_order(service, workflow_id="e2e-first")
    assert started["status"] == "started"
    summary = wait_until(service, "e2e-first", TERMINAL)
    assert summary["status"] == "completed"
    assert summary["steps_completed"] == [
        "check_inventory",
        "reserve_inventory",
        "process_payment",
        "update_warehouse",
    ]
    assert summary["compensation_triggered"] is False
    assert summary["flow_run"] is None
    task_run = summary["task_run"]
    assert task_run["url"].endswith(f"/runs/task-run/{summary['task_run_id']}")
    assert task_run_state(summary["task_run_id"]) == ("COMPLETED", "Completed")
    assert_audit_clean()


def test_a_burst_of_fifty_orders_settles_without_overselling(service):
    """20 orders for the 10 units of SKU-002 and 30 for SKU-003, from 25 threads at once."""
    bodies = [{"product_id": "SKU-002", "customer_id": f"scarce-{i}"} for i in range(20)]
    bodies += [{"product_id": "SKU-003", "customer_id": f"plenty-{i}"} for i in range(30)]
    with ThreadPoolExecutor(max_workers=25) as pool:
        started = list(pool.map(lambda b: post_order(service, quantity=1, **b), bodies))
    assert {s["status"] for s in started} == {"started"}
    final = [wait_until(service, s["workflow_id"], TERMINAL, timeout=120) for s in started]
    by_product = Counter((f["product_id"], f["status"]) for f in final)
    assert by_product == {
        ("SKU-002", "completed"): 10,
        ("SKU-002", "failed"): 10,
        ("SKU-003", "completed"): 30,
    }
    for summary in final:
        if summary["status"] == "failed":
            assert "insufficient stock for SKU-002" in summary["failure_reason"]
            assert summary["compensations"] == []
    sku = next(p for p in httpx.get(f"{service}/inventory").json() if p["product_id"] == "SKU-002")
    assert (sku["available"], sku["reserved"]) == (0, 10)
    assert_audit_clean()


def test_cancel_a_completed_order_and_an_order_in_flight(service):
    completed = wait_until(service, "e2e-first", TERMINAL)
    assert completed["status"] == "completed"
    post_order(service, product_id="SKU-003", workflow_id="e2e-cancel-early")
    for workflow_id in ("e2e-first", "e2e-cancel-early"):
        response = httpx.post(f"{service}/orders/{workflow_id}/cancel", timeout=60)
        assert response.status_code == 202, response.text
    for workflow_id in ("e2e-first", "e2e-cancel-early"):
        assert wait_until(service, workflow_id, TERMINAL - {"completed"})["status"] == "cancelled"
    charge = status_of(service, "e2e-first")
    payments = httpx.get(f"{service}/engine/snapshot").json()["payments"]
    assert [p["status"] for p in payments if p["order_id"] == charge["order_id"]] == ["refunded"]
    again = httpx.post(f"{service}/orders/e2e-first/cancel", timeout=60)
    assert again.status_code == 409
    assert_audit_clean()


def test_retry_settles_a_needs_attention_order(service, monkeypatch):
    monkeypatch.setenv("FAIL_AT", "warehouse,refund")
    order = OrderCreate(
        product_id="SKU-001", quantity=1, customer_id="c-retry", payment_method="tok_visa"
    )
    order_id, _ = record_order(order, lease_owner="test-retry")  # the intake leaves it alone
    assert run_order(order_id, lease_owner="test-retry").status == "needs_attention"
    monkeypatch.delenv("FAIL_AT")
    response = httpx.post(f"{service}/orders/{order_id}/retry", timeout=60)
    assert response.status_code == 202, response.text
    summary = wait_until(service, order_id, {"failed", "cancelled", "completed"})
    assert summary["status"] == "failed"
    assert httpx.post(f"{service}/orders/{order_id}/retry", timeout=60).status_code == 409
    assert httpx.get(f"{service}/audit").json() == {"clean": True, "problems": []}
    assert_audit_clean()


def test_prefect_deploy_all_registers_the_work_pool_deployments(service, prefect_server):
    env = child_env(prefect_server)
    prefect = [PYTHON, "-m", "prefect", "--no-prompt"]
    for argv in (
        ["work-pool", "create", "flowforge", "--type", "process", "--overwrite"],
        ["deploy", "--all", "--prefect-file", "deployments/prefect.yaml"],
    ):
        subprocess.run(prefect + argv, env=env, cwd=ROOT, check=True, timeout=120)
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        for name in (
            "intake-service/order-intake",
            "fulfill-order/fulfill-order",
            "reconcile/reconcile",
        ):
            assert client.read_deployment_by_name(name).work_pool_name == "flowforge"
