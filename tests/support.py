"""Helpers shared by the tests (fixtures stay in conftest.py): the audit check, the environment
of a FlowForge child process, and `python -m` in one."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from payments.audit import audit
from storage.db import session_scope

ROOT = Path(__file__).resolve().parent.parent


def assert_audit_clean() -> None:
    with session_scope(readonly=True) as session:
        problems = audit(session)
    assert problems == [], problems


def child_env(api_url: str | None = None, **extra: str) -> dict[str, str]:
    """Environment for a FlowForge subprocess sharing this test's database and Prefect server."""
    env = {k: v for k, v in os.environ.items() if k not in {"FAIL_AT", "CRASH_AT"}}
    env["PYTHONPATH"] = str(ROOT)
    if api_url:
        env["PREFECT_API_URL"] = api_url
    env.update(extra)
    return env


PYTHON = sys.executable


def run_module(
    module: str,
    *args: str,
    env: dict[str, str] | None = None,
    timeout: float = 120,
    cwd: Path = ROOT,
) -> subprocess.CompletedProcess:
    """`python -m module args…` in a child process (default: `child_env()`), output captured."""
    return subprocess.run(
        [PYTHON, "-m", module, *args],
        env=env or child_env(),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
