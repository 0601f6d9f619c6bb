"""Scale-out on one machine: FlowForge's database and the Prefect server both on a throwaway
PostgreSQL, the stack, and a second intake with its own environment and PREFECT_HOME (as on
another machine). 100 orders from 20 concurrent clients, 10% failing at the warehouse; the
second intake is SIGKILLed mid-way, once it has held orders. Every order settles, both intakes
ran orders, nothing is charged twice, the audit is clean."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from prefect.client.orchestration import get_client
from prefect.exceptions import ObjectNotFound
from prefect.settings import PREFECT_API_URL, temporary_settings

from storage.db import session_scope
from storage.operations import receive_stock
from storage.settings import get_settings
from tests import postgres
from tests.deployments.helpers import (
    TERMINAL,
    child_pid,
    post_order,
    running_stack,
    start_intake,
    wait_until,
)
from tests.flows.helpers import engine_state, orders_by_id
from tests.support import assert_audit_clean, child_env, run_module

pytestmark = pytest.mark.e2e  # starts servers or processes

ORDERS = 100
LEASE = "3"


def intake_pid(prefect_api: str, task_run_id: str) -> int:
    """The pid of the intake whose flow run (`intake-<pid>-…`) held this task run; 0 when
    Prefect never recorded it (its intake was killed before its events were sent)."""
    with (
        temporary_settings(updates={PREFECT_API_URL: prefect_api}),
        get_client(sync_client=True) as client,
    ):
        try:
            flow_run_id = client.read_task_run(task_run_id).flow_run_id
        except ObjectNotFound:
            return 0
        return int(client.read_flow_run(flow_run_id).name.split("-")[1])


class LeaseHolders(threading.Thread):
    """Which intakes held leases, looked at every 50 ms: FlowForge's own record of who drove
    orders (Prefect may never hear of a killed intake's last runs: its queued events die with
    it). Owners are `intake:<host>:<pid>:<hex>`."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.pids: set[int] = set()
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(0.05):
            owners = {row.lease_owner for row in orders_by_id().values() if row.lease_owner}
            self.pids |= {int(o.split(":")[2]) for o in owners if o.startswith("intake:")}


def settled(api: str) -> int:
    orders = httpx.get(f"{api}/orders", params={"limit": 1000}, timeout=30).json()
    return sum(order["status"] in TERMINAL for order in orders)


def test_two_intakes_on_postgres_share_the_orders_and_survive_a_kill(
    postgres_cluster, tmp_path, monkeypatch
):
    database = postgres.create_database(postgres_cluster, "ff_scale_out")
    prefect_db = postgres.create_database(postgres_cluster, "prefect_scale_out")
    monkeypatch.setenv("DATABASE_URL", database)
    get_settings.cache_clear()
    shared = {
        "DATABASE_URL": database,
        "FAIL_AT": "warehouse@*-fail",
        "FLOWFORGE_LEASE_SECONDS": LEASE,
        "FLOWFORGE_RETRY_DELAYS": "0.1",
    }
    env = child_env(FLOWFORGE_PREFECT_HOME=str(tmp_path / "prefect"), **shared)
    prefect_url = prefect_db.replace("+psycopg", "+asyncpg")
    stack_args = ("--no-dashboard", "--embedded-payments", "--prefect-database-url", prefect_url)
    with running_stack(tmp_path, env, *stack_args) as s:  # every part charges the same way
        api, prefect_api = s["api"], s["prefect"]
        stack_intake = child_pid(int(s["pid"]), "flows.intake")
        other = start_intake(  # "another machine": its own environment and Prefect home
            child_env(prefect_api, PREFECT_HOME=str(tmp_path / "worker-home"), **shared),
            tmp_path,
        )
        ids = [f"so-{i:03d}" + ("-fail" if i % 10 == 0 else "") for i in range(ORDERS)]
        with session_scope() as session:
            receive_stock(session, product_id="SKU-003", quantity=ORDERS)
        holders = LeaseHolders()
        holders.start()
        with ThreadPoolExecutor(max_workers=20) as clients:
            posted = clients.map(
                lambda oid: post_order(api, order_id=oid, product_id="SKU-003", quantity=1), ids
            )
            assert {p["status"] for p in posted} == {"started"}
        while settled(api) < ORDERS // 3 or other.process.pid not in holders.pids:
            assert settled(api) < ORDERS, f"the second intake held no order: {holders.pids}"
            time.sleep(0.1)
        os.killpg(other.process.pid, signal.SIGKILL)  # mid-burst
        holders.done.set()
        time.sleep(float(LEASE) + 1)
        sweep = run_module(
            "flows.reconcile", "--stale-after", "0", env=child_env(prefect_api, **shared)
        )
        assert sweep.returncode == 0, sweep.stderr[-2000:]
        final = [wait_until(api, oid, TERMINAL, timeout=120) for oid in ids]

        assert Counter(f["status"] for f in final) == {"completed": 90, "failed": 10}
        for summary in final:
            if summary["status"] == "failed":
                assert summary["order_id"].endswith("-fail")
                assert summary["compensations"] == [
                    "revert_warehouse",
                    "refund_payment",
                    "release_inventory",
                ]
        payments = Counter(p["order_id"] for p in engine_state()["payments"])
        assert set(payments.values()) == {1} and len(payments) == ORDERS
        assert httpx.get(f"{api}/audit").json() == {"clean": True, "problems": []}
        assert_audit_clean()
        assert {stack_intake, other.process.pid} <= holders.pids, holders.pids
        ran = Counter(intake_pid(prefect_api, f["task_run_id"]) for f in final)
        assert stack_intake in ran, ran  # Prefect recorded the surviving intake's runs
