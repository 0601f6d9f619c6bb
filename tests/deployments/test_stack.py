"""The local stack: up, healthy, and gone without a trace after SIGTERM."""

from __future__ import annotations

import os
import signal
import socket
import time
from pathlib import Path

import httpx

from deployments.stack import alive, descendants
from tests.deployments.helpers import (
    TERMINAL,
    child_pid,
    free_port,
    port_is_free,
    post_order,
    running_stack,
    task_run_state,
    wait_pid,
    wait_until,
)
from tests.support import child_env, run_module


def test_stack_on_a_fresh_database_url_serves_an_order_and_stops_every_child(tmp_path):
    url = f"sqlite:///{tmp_path}/fresh/dir/ff.sqlite3"
    env = child_env(DATABASE_URL=url, FLOWFORGE_PREFECT_HOME=str(tmp_path / "prefect"))
    with running_stack(tmp_path, env) as stack:
        pid = int(stack["pid"])
        started = descendants(pid)
        assert len(started) >= 6  # payment provider, server, runner, intake, API, dashboard
        order = post_order(stack["api"], workflow_id="fresh-1")
        assert wait_until(stack["api"], order["workflow_id"], TERMINAL)["status"] == "completed"
        assert (tmp_path / "fresh" / "dir" / "ff.sqlite3").is_file()
        [payment] = httpx.get(f"{stack['api']}/engine/snapshot").json()["payments"]
        assert payment["provider"] == "http"  # charged at the stack's payment provider
        assert httpx.get(f"{stack['api']}/audit").json() == {"clean": True, "problems": []}
        os.kill(pid, signal.SIGTERM)
        assert wait_pid(pid) == 0
        assert alive(started) == set()
        ports = ("api", "prefect", "dashboard", "payment")
        assert all(port_is_free(int(stack[f"{name}_port"])) for name in ports)


def test_a_crashed_part_is_restarted_while_the_api_keeps_taking_orders(db, tmp_path):
    token = {"Authorization": "Bearer t0ken"}
    env = child_env(FLOWFORGE_API_TOKEN="t0ken", FLOWFORGE_PREFECT_HOME=str(tmp_path / "prefect"))
    with running_stack(tmp_path, env, "--no-dashboard") as stack:
        api, prefect = stack["api"], stack["prefect"]
        # the token closes the Prefect server too: nobody on the machine can start runs
        assert httpx.post(f"{prefect}/flow_runs/filter", json={}).status_code == 401
        auth = httpx.BasicAuth("flowforge", "t0ken")
        assert httpx.post(f"{prefect}/flow_runs/filter", json={}, auth=auth).status_code == 200
        for part in ("flows.intake", "prefect server start"):
            os.killpg(os.getpgid(child_pid(int(stack["pid"]), part)), signal.SIGKILL)
            order = post_order(stack["api"], headers=token)  # recorded while the part is down
            summary = wait_until(api, order["workflow_id"], TERMINAL, timeout=120, headers=token)
            assert summary["status"] == "completed"
        log = Path(stack["log"])
        deadline = time.monotonic() + 90
        while log.read_text().count("is serving again") < 2:
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.5)
        assert "intake exited with code -9; restarting in 1 s" in log.read_text()
        assert "Prefect server (UI) exited with code -9; restarting in 1 s" in log.read_text()
        order = post_order(stack["api"], headers=token)  # and the restarted server takes runs
        summary = wait_until(api, order["workflow_id"], TERMINAL, headers=token)
        assert summary["status"] == "completed"
        assert task_run_state(summary["task_run_id"], prefect, auth="flowforge:t0ken") == (
            "COMPLETED",
            "Completed",
        )


def test_stack_refuses_a_port_that_is_already_taken(db):
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        taken = holder.getsockname()[1]
        done = run_module(
            "deployments.stack",
            "--prefect-port",
            str(taken),
            "--api-port",
            str(free_port()),
            "--no-dashboard",
            env={k: v for k, v in child_env().items() if k != "PREFECT_API_URL"},
            timeout=60,
        )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"python -m deployments.stack: error: already in use: {taken} (--prefect-port); "
        "stop what holds it or pick another port"
    ]
