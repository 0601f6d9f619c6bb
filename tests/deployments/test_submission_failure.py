"""No order is lost while Prefect is down: POST /orders only records the order (no Prefect
call on the request path), and the intake runs it once the server is back."""

from __future__ import annotations

import httpx
import pytest

from deployments.processes import Child, stop
from tests.deployments.helpers import (
    free_port,
    post_order,
    start_api,
    start_intake,
    start_prefect_server,
    status_of,
    task_run_state,
    wait_until,
)
from tests.support import assert_audit_clean, child_env

pytestmark = pytest.mark.e2e  # starts servers or processes


def test_an_order_recorded_while_prefect_is_down_runs_once_it_is_back(db, tmp_path):
    prefect_port = free_port()
    prefect_api = f"http://127.0.0.1:{prefect_port}/api"
    env = child_env(prefect_api, PREFECT_HOME=str(tmp_path / "prefect-home"))
    children: list[Child] = []
    try:
        children.append(start_api(env))
        api = children[-1].url
        started = post_order(api, workflow_id="while-down")
        assert started["status"] == "started"
        summary = status_of(api, "while-down")
        assert (summary["status"], summary["task_run"]) == ("pending", None)
        assert httpx.get(f"{api}/orders").json()[0]["workflow_id"] == "while-down"

        children.append(start_prefect_server(env, prefect_port))
        children.append(start_intake(env, tmp_path))
        summary = wait_until(api, "while-down", {"completed", "failed"})
        assert summary["status"] == "completed"
        assert task_run_state(summary["task_run_id"], prefect_api) == ("COMPLETED", "Completed")
    finally:
        stop(children)
    assert_audit_clean()
