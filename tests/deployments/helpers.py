"""Helpers for service tests: free ports, child processes, talking to the API over HTTP."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from deployments.processes import Child, descendants, start, wait_for, wait_ready
from flows.prefect_api import free_port
from tests.api.helpers import order_body
from tests.support import PYTHON, ROOT

TERMINAL = {"completed", "failed", "needs_attention", "cancelled"}


def port_is_free(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


def start_api(env: dict[str, str]) -> Child:
    """The API over real HTTP (uvicorn) on a free port, ready."""
    port = free_port()
    api = start("API", f"http://127.0.0.1:{port}", [PYTHON, "-m", "api", "--port", str(port)], env)
    wait_ready(api, f"{api.url}/health")
    return api


def start_intake(env: dict[str, str], workdir: Path) -> Child:
    """`python -m flows.intake` with `env`, ready (it has looked for orders once)."""
    ready = workdir / "intake.ready"
    intake = start("intake", "", [PYTHON, "-m", "flows.intake", "--ready-file", str(ready)], env)
    wait_for(intake, ready.exists, "its first look for orders")
    return intake


def task_run_state(
    task_run_id: str, api_url: str | None = None, timeout: float = 30, auth: str | None = None
) -> tuple[str, str]:
    """(type, name) of a task run's state once it is final (the server records task-run
    states from events, a moment after they happen); asks `api_url` or this process's
    server, with the `auth` string ("user:password") when it is closed."""
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound
    from prefect.settings import PREFECT_API_AUTH_STRING, PREFECT_API_URL, temporary_settings

    deadline = time.monotonic() + timeout
    url = api_url or PREFECT_API_URL.value()
    with (
        temporary_settings(updates={PREFECT_API_URL: url, PREFECT_API_AUTH_STRING: auth}),
        get_client(sync_client=True) as client,
    ):
        while True:
            try:
                state = client.read_task_run(task_run_id).state
            except ObjectNotFound:  # not recorded yet
                state = None
            if state is not None and state.is_final() or time.monotonic() > deadline:
                return (state.type.value, state.name) if state else ("", "")
            time.sleep(0.5)


def start_prefect_server(env: dict[str, str], port: int) -> Child:
    """A throwaway Prefect server with the PREFECT_HOME (and database) given in `env`."""
    server = start(
        "Prefect server",
        f"http://127.0.0.1:{port}/api",
        [PYTHON, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        env,
    )
    wait_ready(server, f"{server.url}/health")
    return server


def post_order(base: str, headers: dict[str, str] | None = None, **changes: Any) -> dict:
    response = httpx.post(f"{base}/orders", json=order_body(**changes), timeout=60, headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


def status_of(base: str, workflow_id: str, headers: dict[str, str] | None = None) -> dict:
    response = httpx.get(f"{base}/orders/{workflow_id}/status", timeout=30, headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


def wait_until(
    base: str,
    workflow_id: str,
    statuses: set[str],
    timeout: float = 90,
    headers: dict[str, str] | None = None,
) -> dict:
    """Poll the order's status until it is in `statuses`; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        summary = status_of(base, workflow_id, headers)
        if summary["status"] in statuses:
            return summary
        assert time.monotonic() < deadline, f"{workflow_id} still {summary['status']}"
        time.sleep(0.3)


@contextmanager
def running_stack(tmp_path: Path, env: dict[str, str], *args: str) -> Iterator[dict[str, str]]:
    """`python -m deployments.stack` until every part serves; yields its URLs and log file.
    Stopped (SIGKILL of its group) if the test did not stop it."""
    ports = {name: free_port() for name in ("api", "prefect", "dashboard", "payment")}
    env = {k: v for k, v in env.items() if k != "PREFECT_API_URL"}  # it starts its own server
    log = tmp_path / "stack.log"
    with log.open("w") as out:
        stack = subprocess.Popen(
            [PYTHON, "-u", "-m", "deployments.stack", *args]
            + [f"--{name}-port={port}" for name, port in ports.items()]
            + ["--payment-db", str(tmp_path / "provider.sqlite3")],
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
