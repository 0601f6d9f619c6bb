"""The long-lived processes some modes need: a Prefect server, the FlowForge stack. Each is
started in its own session with its output in a log file, waited for until it answers, and
stopped (SIGTERM, then SIGKILL for whatever outlives it) by the stack's process supervision
(deployments/processes.py)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from deployments.processes import Child, stop, wait_ready
from deployments.stack import SERVER_BATCHING
from flows.prefect_api import die_with_parent, free_port
from storage.settings import get_settings

ROOT = Path(__file__).resolve().parent.parent
READY_SECONDS = 180.0


@contextmanager
def service(argv: list[str], env: dict[str, str], log: Path, ready_url: str) -> Iterator[int]:
    """Run `argv` until the block ends, once `ready_url` answers 200; yields its pid."""
    with log.open("ab") as output:
        process = subprocess.Popen(  # killed by the kernel if the bench is
            argv,
            cwd=ROOT,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=die_with_parent,
        )
    child = Child(" ".join(argv[1:4]), ready_url, process, argv, env)
    try:
        try:
            wait_ready(child, ready_url, READY_SECONDS)
        except RuntimeError as exc:
            raise RuntimeError(f"{exc}; see {log}") from None
        yield process.pid
    finally:
        stop([child])


@contextmanager
def prefect_server(home: Path, env: dict[str, str]) -> Iterator[tuple[str, int]]:
    """A Prefect server with its own PREFECT_HOME, configured as the stack configures its own;
    yields (its API URL, its pid)."""
    port = free_port()
    api_url = f"http://127.0.0.1:{port}/api"
    argv = [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1"]
    home.mkdir(parents=True, exist_ok=True)
    argv += ["--port", str(port)]
    server_env = SERVER_BATCHING | env | {"PREFECT_HOME": str(home)}
    with service(argv, server_env, home / "server.log", f"{api_url}/health") as pid:
        yield api_url, pid


@contextmanager
def stack(env: dict[str, str], log: Path) -> Iterator[tuple[str, int]]:
    """`python -m deployments.stack --no-dashboard --embedded-payments` (every mode charges in
    the database) on free ports, with its own Prefect server; yields (the HTTP API's base URL,
    the stack's pid)."""
    api_port, prefect_port = free_port(), free_port()
    api = f"http://{get_settings().api_host}:{api_port}"
    argv = [sys.executable, "-m", "deployments.stack", "--no-dashboard", "--embedded-payments"]
    argv += ["--api-port", str(api_port), "--prefect-port", str(prefect_port)]
    with service(argv, env, log, f"{api}/health") as pid:
        yield api, pid
