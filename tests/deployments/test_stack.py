"""The local stack: up, healthy, and gone without a trace after SIGTERM."""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from deployments.processes import alive, descendants, start, stop, wait_ready
from deployments.stack import provider_command
from storage.settings import get_settings
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
from tests.support import PYTHON, ROOT, child_env, run_module

pytestmark = pytest.mark.e2e  # starts servers or processes

# A part: ready (its pid in PATH) after DELAY s, exits 3 after LIFETIME s more; with ONCE it
# is ready only the first time (started again, it hangs).
PART = """
import os, sys, time
delay, path, lifetime, once = sys.argv[1:]
if once == "True" and os.path.exists(path):
    time.sleep(600)
time.sleep(float(delay))
open(path, "w").write(str(os.getpid()))
time.sleep(float(lifetime))
sys.exit(3)
"""
# Supervises the parts given as JSON {name: [delay, lifetime or null, once?]}; optional
# "backoff" and "ready_timeout" replace the supervisor's. Exits with supervise's code, 0 on
# SIGTERM.
SUPERVISOR = """
import json, os, signal, sys
from pathlib import Path
from deployments import processes

def stop_on(signum, frame):
    raise processes.Stop(signum)

signal.signal(signal.SIGTERM, stop_on)
workdir, spec, part = Path(sys.argv[1]), json.loads(sys.argv[2]), sys.argv[3]
processes.BACKOFF_SECONDS = tuple(spec.get("backoff", processes.BACKOFF_SECONDS))
processes.READY_TIMEOUT_SECONDS = spec.get("ready_timeout", processes.READY_TIMEOUT_SECONDS)

def serves(path):
    return lambda child: path.exists() and path.read_text() == str(child.process.pid)

children = []
try:
    for name, (delay, lifetime, *once) in spec["parts"].items():
        path = workdir / name
        argv = [sys.executable, "-c", part, str(delay), str(path), str(lifetime or 600)]
        argv.append(str(bool(once and once[0])))
        processes.bring_up(children, name, "", argv, dict(os.environ), serves(path))
    print("up", flush=True)
    sys.exit(processes.supervise(children))
except processes.Stop:
    sys.exit(0)
finally:
    processes.stop(children)
"""


def supervising(tmp_path: Path, spec: dict) -> tuple[subprocess.Popen[bytes], Path]:
    """The supervisor above on `spec`, once every part is up; and its log."""
    log = tmp_path / "supervisor.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            [PYTHON, "-u", "-c", SUPERVISOR, str(tmp_path), json.dumps(spec), PART],
            cwd=ROOT,
            env=child_env(),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    deadline = time.monotonic() + 60
    while "up" not in log.read_text().split():
        assert process.poll() is None and time.monotonic() < deadline, log.read_text()
        time.sleep(0.1)
    return process, log


def pid_of(tmp_path: Path, name: str) -> int | None:
    text = (tmp_path / name).read_text()
    return int(text) if text else None


def test_stack_on_a_fresh_database_url_serves_an_order_and_stops_every_child(tmp_path):
    url = f"sqlite:///{tmp_path}/fresh/dir/ff.sqlite3"
    env = child_env(DATABASE_URL=url, FLOWFORGE_PREFECT_HOME=str(tmp_path / "prefect"))
    with running_stack(tmp_path, env) as stack:
        pid = int(stack["pid"])
        started = descendants(pid)
        assert len(started) >= 6  # payment provider, server, runner, intake, API, dashboard
        provider = Path(f"/proc/{child_pid(pid, '-m provider')}/cmdline").read_bytes()
        assert b"--api-key" not in provider and b"--create" in provider
        order = post_order(stack["api"], workflow_id="fresh-1")
        assert wait_until(stack["api"], order["workflow_id"], TERMINAL)["status"] == "completed"
        assert (tmp_path / "fresh" / "dir" / "ff.sqlite3").is_file()
        [payment] = httpx.get(f"{stack['api']}/engine/snapshot").json()["payments"]
        assert payment["provider"] == "stripe"  # charged at the stack's double of Stripe
        assert httpx.get(f"{stack['api']}/audit").json() == {"clean": True, "problems": []}
        os.kill(pid, signal.SIGTERM)
        assert wait_pid(pid) == 0
        assert alive(started) == set()
        ports = ("api", "prefect", "dashboard", "payment")
        assert all(port_is_free(int(stack[f"{name}_port"])) for name in ports)


def test_two_parts_that_die_together_come_back_together(tmp_path):
    # "slow" is listed first and takes 4 s to be ready: waiting for it must not hold up "fast"
    supervisor, log = supervising(tmp_path, {"parts": {"slow": [4, None], "fast": [0, None]}})
    try:
        old = {name: pid_of(tmp_path, name) for name in ("slow", "fast")}
        killed = time.monotonic()
        for pid in old.values():
            os.killpg(pid, signal.SIGKILL)
        back: dict[str, float] = {}
        while len(back) < 2:
            assert time.monotonic() - killed < 20, log.read_text()
            for name, pid in old.items():
                if name not in back and pid_of(tmp_path, name) not in (None, pid):
                    back[name] = time.monotonic() - killed
            time.sleep(0.05)
        assert back["fast"] < 3, (back, log.read_text())  # 1 s back-off, not after slow's 4 s
        assert back["slow"] < 7, (back, log.read_text())
        lines = log.read_text().splitlines()
        for name in ("slow", "fast"):
            assert f"{name} exited with code -9; restarting in 1 s" in lines
        while "slow is serving again" not in lines:
            assert time.monotonic() - killed < 20, lines
            time.sleep(0.1)
            lines = log.read_text().splitlines()
        assert lines.index("fast is serving again") < lines.index("slow is serving again")
        new = {pid_of(tmp_path, name) for name in ("slow", "fast")}
        supervisor.send_signal(signal.SIGTERM)
        assert supervisor.wait(30) == 0
        assert alive(new) == set()
    finally:
        if supervisor.poll() is None:
            os.killpg(supervisor.pid, signal.SIGKILL)


def test_a_part_that_keeps_crashing_ends_the_stack(tmp_path):
    spec = {"backoff": [0.1], "parts": {"steady": [0, None], "flaky": [0, 0.3]}}
    supervisor, log = supervising(tmp_path, spec)
    try:
        steady = pid_of(tmp_path, "steady")
        assert supervisor.wait(60) == 1, log.read_text()
        lines = log.read_text().splitlines()
        assert lines.count("flaky exited with code 3; restarting in 0.1 s") == 5
        assert lines.count("flaky is serving again") == 5
        assert "flaky exited with code 3, 6 times in 300 s: giving up" in lines
        assert alive({steady}) == set()  # everything stopped
    finally:
        if supervisor.poll() is None:
            os.killpg(supervisor.pid, signal.SIGKILL)


def test_a_restarted_part_that_never_serves_is_killed_and_counted(tmp_path):
    spec = {"backoff": [0.1], "ready_timeout": 1, "parts": {"stuck": [0, 0.3, True]}}
    supervisor, log = supervising(tmp_path, spec)
    try:
        assert supervisor.wait(60) == 1, log.read_text()
        lines = log.read_text().splitlines()
        assert lines[1] == "stuck exited with code 3; restarting in 0.1 s"
        assert lines.count("stuck not ready after 1 s; restarting in 0.1 s") == 4
        assert lines[-1] == "stuck not ready after 1 s, 6 times in 300 s: giving up"
        assert "stuck is serving again" not in lines
    finally:
        if supervisor.poll() is None:
            os.killpg(supervisor.pid, signal.SIGKILL)


def test_the_provider_gets_its_key_in_its_environment_only(monkeypatch, tmp_path):
    monkeypatch.setenv("STRIPE_API_KEY", "sk_test_secret_4711")
    get_settings.cache_clear()
    args = argparse.Namespace(payment_port=free_port(), payment_db=tmp_path / "p.sqlite3")
    argv, env = provider_command(args)
    assert "--api-key" not in argv and not any("secret_4711" in part for part in argv)
    assert env["PROVIDER_API_KEY"] == "sk_test_secret_4711"
    provider = start("payment provider", f"http://127.0.0.1:{args.payment_port}", argv, env)
    try:
        assert provider.process.wait(30) == 2  # no database: a restart never creates one
        provider = start("payment provider", provider.url, [*argv, "--create"], env)
        wait_ready(provider, f"{provider.url}/health", timeout=30)
        cmdline = Path(f"/proc/{provider.process.pid}/cmdline").read_bytes()
        assert b"secret_4711" not in cmdline
        for key, status in (("sk_test_secret_4711", 200), ("sk_test_flowforge", 401)):
            auth = {"Authorization": f"Bearer {key}"}
            answer = httpx.get(f"{provider.url}/v1/payment_intents", headers=auth)
            assert answer.status_code == status
    finally:
        stop([provider])


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
