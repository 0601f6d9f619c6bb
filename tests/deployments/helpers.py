"""Helpers for service tests: free ports, child processes, talking to the API over HTTP."""

from __future__ import annotations

import socket
import time
from typing import Any

import httpx

from deployments.stack import Child, start, wait_ready
from tests.api.helpers import order_body
from tests.conftest import PYTHON

TERMINAL = {"completed", "failed", "needs_attention", "cancelled"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def port_is_free(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


def start_api(env: dict[str, str]) -> Child:
    """The API over real HTTP (uvicorn) on a free port, ready."""
    port = free_port()
    api = start("API", f"http://127.0.0.1:{port}", [PYTHON, "-m", "api", "--port", str(port)], env)
    wait_ready(api, f"{api.url}/health")
    return api


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


def post_order(base: str, **changes: Any) -> dict[str, Any]:
    response = httpx.post(f"{base}/orders", json=order_body(**changes), timeout=60)
    assert response.status_code == 200, response.text
    return response.json()


def status_of(base: str, workflow_id: str) -> dict[str, Any]:
    response = httpx.get(f"{base}/orders/{workflow_id}/status", timeout=30)
    assert response.status_code == 200, response.text
    return response.json()


def wait_until(base: str, workflow_id: str, statuses: set[str], timeout: float = 90) -> dict:
    """Poll the order's status until it is in `statuses`; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        summary = status_of(base, workflow_id)
        if summary["status"] in statuses:
            return summary
        assert time.monotonic() < deadline, f"{workflow_id} still {summary['status']}"
        time.sleep(0.3)
