"""The local stack: up, healthy, and gone without a trace after SIGTERM."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time

import httpx

from deployments.stack import alive, descendants
from tests.conftest import PYTHON, ROOT, child_env, run_module
from tests.deployments.helpers import free_port, port_is_free


def test_stack_starts_serves_and_stops_every_child(db):
    ports = {name: free_port() for name in ("api", "prefect", "dashboard")}
    env = child_env()
    env.pop("PREFECT_API_URL", None)  # the stack starts its own server
    stack = subprocess.Popen(
        [PYTHON, "-m", "deployments.stack"]
        + [f"--{name}-port={port}" for name, port in ports.items()],
        cwd=ROOT,
        env=env,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 150
        while True:
            assert stack.poll() is None, "the stack exited early"
            assert time.monotonic() < deadline, "the API never came up"
            try:
                if httpx.get(f"http://127.0.0.1:{ports['api']}/health").status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.5)
        time.sleep(1)  # let the dashboard come up too, when there is one
        started = descendants(stack.pid)
        assert len(started) >= 3  # server, runner, API (and their own children)
        stack.send_signal(signal.SIGTERM)
        assert stack.wait(timeout=90) == 0
        assert alive(started) == set()
        assert all(port_is_free(port) for port in ports.values())
    finally:
        if stack.poll() is None:
            os.killpg(stack.pid, signal.SIGKILL)


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
