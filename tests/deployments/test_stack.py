"""The local stack: up, healthy, and gone without a trace after SIGTERM."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from deployments.stack import alive, descendants
from tests.conftest import PYTHON, ROOT, child_env, run_module
from tests.deployments.helpers import (
    TERMINAL,
    free_port,
    port_is_free,
    post_order,
    task_run_state,
    wait_until,
)


@contextmanager
def running_stack(tmp_path: Path, env: dict[str, str], *args: str) -> Iterator[dict[str, str]]:
    """`python -m deployments.stack` until every part serves; yields its URLs and log file.
    Stopped (SIGKILL of its group) if the test did not stop it."""
    ports = {"api": free_port(), "prefect": free_port(), "dashboard": free_port()}
    env = {k: v for k, v in env.items() if k != "PREFECT_API_URL"}  # it starts its own server
    log = tmp_path / "stack.log"
    with log.open("w") as out:
        stack = subprocess.Popen(
            [PYTHON, "-u", "-m", "deployments.stack", *args]
            + [f"--{name}-port={port}" for name, port in ports.items()],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 150
        while "FlowForge is up" not in log.read_text():
            assert stack.poll() is None, f"the stack exited early:\n{log.read_text()[-3000:]}"
            assert time.monotonic() < deadline, "the stack never came up"
            time.sleep(0.5)
        yield {
            "pid": str(stack.pid),
            "api": f"http://127.0.0.1:{ports['api']}",
            "prefect": f"http://127.0.0.1:{ports['prefect']}/api",
            "log": str(log),
            **{f"{name}_port": str(port) for name, port in ports.items()},
        }
    finally:
        if stack.poll() is None:
            os.killpg(stack.pid, signal.SIGKILL)


def test_stack_on_a_fresh_database_url_serves_an_order_and_stops_every_child(tmp_path):
    url = f"sqlite:///{tmp_path}/fresh/dir/ff.sqlite3"
    env = child_env(DATABASE_URL=url, FLOWFORGE_PREFECT_HOME=str(tmp_path / "prefect"))
    with running_stack(tmp_path, env) as stack:
        pid = int(stack["pid"])
        started = descendants(pid)
        assert len(started) >= 5  # server, runner, intake, API, dashboard
        order = post_order(stack["api"], workflow_id="fresh-1")
        assert wait_until(stack["api"], order["workflow_id"], TERMINAL)["status"] == "completed"
        assert (tmp_path / "fresh" / "dir" / "ff.sqlite3").is_file()
        os.kill(pid, signal.SIGTERM)
        assert wait_pid(pid) == 0
        assert alive(started) == set()
        assert all(port_is_free(int(stack[f"{n}_port"])) for n in ("api", "prefect", "dashboard"))


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


def child_pid(stack_pid: int, command: str) -> int:
    """The stack's child whose command line contains `command`."""
    for pid in descendants(stack_pid):
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        if command in cmdline and os.getpgid(pid) == pid:
            return pid
    raise AssertionError(f"no child runs {command!r}")


def wait_pid(pid: int, timeout: float = 90) -> int | None:
    """The exit code of our child `pid` once it ends (None if it outlives `timeout`)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.2)
    return None


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
