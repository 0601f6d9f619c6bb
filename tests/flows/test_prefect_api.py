"""One-off commands without PREFECT_API_URL start a temporary Prefect server of their own:
it dies with its process even when that process is killed, concurrent first starts on a fresh
PREFECT_HOME all succeed, and a server that cannot start is one line, not a lost order."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest

from flows.fulfill import order_summary
from tests.support import PYTHON, ROOT, assert_audit_clean, child_env, run_module

pytestmark = pytest.mark.e2e  # starts servers or processes

ORDER = ["--product", "SKU-001", "--quantity", "1", "--customer", "c", "--payment-method", "t"]


def serverless_env(home: Path, **extra: str) -> dict[str, str]:
    env = child_env(PREFECT_HOME=str(home), **extra)
    env.pop("PREFECT_API_URL", None)
    return env


def processes_with_home(home: Path) -> list[int]:
    """Live processes whose environment names this PREFECT_HOME."""
    marker = f"PREFECT_HOME={home}".encode()
    found = []
    for environ in Path("/proc").glob("[0-9]*/environ"):
        try:
            if marker in environ.read_bytes().split(b"\0"):
                found.append(int(environ.parent.name))
        except OSError:
            continue
    return found


@pytest.mark.usefixtures("db")
def test_a_killed_run_leaves_no_temporary_server_behind(tmp_path):
    home = tmp_path / "prefect-home"
    done = run_module(
        "flows.fulfill",
        *ORDER,
        "--order-id",
        "killed",
        env=serverless_env(home, CRASH_AT="payment:after"),
    )
    assert done.returncode == -9
    deadline = time.monotonic() + 10
    while processes_with_home(home) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert processes_with_home(home) == []
    assert order_summary("killed").status == "running"  # for the sweep, as after any crash


@pytest.mark.usefixtures("db")
def test_concurrent_runs_on_a_fresh_prefect_home_all_complete(tmp_path):
    env = serverless_env(tmp_path / "fresh-home")
    runs = [
        subprocess.Popen(
            [PYTHON, "-m", "flows.fulfill", *ORDER, "--order-id", f"c{i}", "--json"],
            env=env,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(3)
    ]
    results = [run.communicate(timeout=300) for run in runs]
    assert [run.returncode for run in runs] == [0, 0, 0], [err[-1500:] for _, err in results]
    assert {json.loads(out)["status"] for out, _ in results} == {"completed"}
    assert_audit_clean()


@pytest.mark.usefixtures("db")
def test_no_server_at_all_is_one_line_and_the_order_waits(tmp_path):
    broken = "postgresql+asyncpg://nobody@127.0.0.1:9/none"  # the server cannot start on it
    env = serverless_env(tmp_path / "home", PREFECT_SERVER_DATABASE_CONNECTION_URL=broken)
    done = run_module("flows.fulfill", *ORDER, "--order-id", "waits", env=env, timeout=240)
    assert done.returncode == 4
    [line] = done.stderr.splitlines()
    assert line.startswith("python -m flows.fulfill: no Prefect server: PREFECT_API_URL is not set")
    assert line.endswith(
        "order waits is recorded and waits for an intake or the sweep "
        "(or run it again with --order-id waits)"
    )
    assert order_summary("waits").status == "pending"
