"""A Prefect server closed with an auth string (as the stack closes it with
FLOWFORGE_API_TOKEN) turns away a command that lacks PREFECT_API_AUTH_STRING: one line naming
the setting, exit 2, before anything is recorded — not a traceback, nor a pipeline that retries
the 401 for ever."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from flows.prefect_api import NO_TELEMETRY, answers, die_with_parent, free_port
from tests.flows.helpers import engine_state
from tests.support import PYTHON, child_env, run_module

pytestmark = pytest.mark.e2e  # starts servers or processes

AUTH = "flowforge:s3cret"
ORDER = ["--product", "SKU-001", "--quantity", "1", "--customer", "c", "--payment-method", "t"]


@pytest.fixture(scope="module")
def closed_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Prefect server that requires AUTH; its API URL."""
    port = free_port()
    env = child_env(
        PREFECT_HOME=str(tmp_path_factory.mktemp("closed-prefect")),
        PREFECT_SERVER_API_AUTH_STRING=AUTH,
        **NO_TELEMETRY,
    )
    server = subprocess.Popen(
        [PYTHON, "-m", "prefect", "server", "start", "--no-ui", "--host", "127.0.0.1"]
        + ["--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        preexec_fn=die_with_parent,
    )
    url = f"http://127.0.0.1:{port}/api"
    try:
        deadline = time.monotonic() + 120
        while not answers(f"{url}/health"):  # it answers without credentials
            assert server.poll() is None and time.monotonic() < deadline, "no Prefect server"
            time.sleep(0.2)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=30)


def env_for(url: str, **extra: str) -> dict[str, str]:
    env = child_env(url, **extra)
    if "PREFECT_API_AUTH_STRING" not in extra:
        env.pop("PREFECT_API_AUTH_STRING", None)
    return env


@pytest.mark.parametrize(
    ("module", "args"),
    [("flows.fulfill", ORDER), ("flows.intake", []), ("flows.batch", ["orders.jsonl"])],
)
def test_no_credentials_is_one_line_and_nothing_is_recorded(
    db, closed_server, tmp_path: Path, module, args
):
    order = dict(product_id="SKU-001", quantity=1, customer_id="c", payment_method="t")
    (tmp_path / "orders.jsonl").write_text(json.dumps(order) + "\n")
    done = run_module(module, *args, env=env_for(closed_server), cwd=tmp_path, timeout=60)
    assert done.returncode == 2, done.stderr[-2000:]
    assert done.stderr.splitlines() == [
        f"python -m {module}: error: the Prefect server at {closed_server} requires credentials "
        "(401 Unauthorized): set PREFECT_API_AUTH_STRING "
        "(for the stack's: flowforge:<its FLOWFORGE_API_TOKEN>)"
    ]
    assert engine_state()["orders"] == []


def test_wrong_credentials_are_named_and_the_right_ones_let_the_order_run(db, closed_server):
    wrong = run_module(
        "flows.fulfill",
        *ORDER,
        env=env_for(closed_server, PREFECT_API_AUTH_STRING="flowforge:nope"),
    )
    assert wrong.returncode == 2
    assert wrong.stderr.splitlines() == [
        f"python -m flows.fulfill: error: the Prefect server at {closed_server} refuses "
        "PREFECT_API_AUTH_STRING (401 Unauthorized)"
    ]
    assert engine_state()["orders"] == []
    right = run_module(
        "flows.fulfill", *ORDER, "--json", env=env_for(closed_server, PREFECT_API_AUTH_STRING=AUTH)
    )
    assert right.returncode == 0, right.stderr[-2000:]
    assert json.loads(right.stdout)["status"] == "completed"
