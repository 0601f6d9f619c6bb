"""No order is lost at submission: with the Prefect server down, POST /orders records the order
and says its run is pending; once the server is back, the sweep drives it to completion."""

from __future__ import annotations

import httpx

from deployments.stack import Child, stop
from tests.conftest import assert_audit_clean, child_env, run_module
from tests.deployments.helpers import (
    free_port,
    post_order,
    start_api,
    start_prefect_server,
    status_of,
)


def test_an_order_submitted_while_prefect_is_down_is_swept_later(db, tmp_path):
    prefect_port = free_port()
    prefect_api = f"http://127.0.0.1:{prefect_port}/api"
    env = child_env(prefect_api, PREFECT_HOME=str(tmp_path / "prefect-home"))
    children: list[Child] = []
    try:
        children.append(start_api(env))
        api = children[-1].url
        started = post_order(api, workflow_id="while-down")
        assert (started["status"], started["flow_run_id"]) == ("pending", None)
        assert status_of(api, "while-down")["status"] == "pending"
        assert httpx.get(f"{api}/orders").json()[0]["workflow_id"] == "while-down"

        children.append(start_prefect_server(env, prefect_port))
        sweep = run_module("flows.reconcile", "--stale-after", "0", env=env, timeout=180)
        assert sweep.returncode == 0, sweep.stderr[-2000:]
        summary = status_of(api, "while-down")
        assert summary["status"] == "completed"
        assert summary["flow_run"]["state"] is not None
    finally:
        stop(children)
    assert_audit_clean()
