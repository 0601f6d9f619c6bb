"""Shared fixtures: a fresh SQLite database per test, one real Prefect server per session."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

# Before anything imports Prefect or reads FlowForge settings.
os.environ.setdefault("PREFECT_HOME", tempfile.mkdtemp(prefix="flowforge-prefect-home-"))
os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
os.environ["DO_NOT_TRACK"] = "1"
os.environ["FLOWFORGE_RETRY_DELAYS"] = "0"
os.environ.pop("FAIL_AT", None)
os.environ.pop("CRASH_AT", None)
os.environ.pop("DATABASE_URL", None)

from storage.audit import audit  # noqa: E402
from storage.db import migrate_database, session_scope  # noqa: E402
from storage.settings import get_settings  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A fresh SQLite file with the default catalog, used by this process and its children."""
    path = tmp_path / "flowforge.sqlite3"
    monkeypatch.setenv("FLOWFORGE_DB_PATH", str(path))
    get_settings.cache_clear()
    migrate_database()
    yield path
    get_settings.cache_clear()


@pytest.fixture(scope="session")
def prefect_server() -> Iterator[str]:
    """One real Prefect server (the test harness) for the whole session; yields its API URL."""
    from prefect.settings import (
        PREFECT_API_URL,
        PREFECT_FLOWS_HEARTBEAT_FREQUENCY,
        temporary_settings,
    )
    from prefect.testing.utilities import prefect_test_harness

    with (
        prefect_test_harness(server_startup_timeout=60),
        temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}),
    ):
        yield str(PREFECT_API_URL.value())


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


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[str]:
    """A real PostgreSQL cluster for the session (skipped where no server binaries exist)."""
    from tests import postgres

    if not postgres.available():
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL server binaries are missing in CI")
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) are not installed")
    with postgres.cluster() as url:
        yield url


@pytest.fixture
def pg_db(postgres_cluster: str, monkeypatch: pytest.MonkeyPatch, request) -> Iterator[str]:
    """A fresh PostgreSQL database (default catalog) as DATABASE_URL for this test and its
    children."""
    from tests import postgres

    name = "ff_" + "".join(c for c in request.node.name.lower() if c.isalnum())[:40]
    url = postgres.create_database(postgres_cluster, name)
    monkeypatch.setenv("DATABASE_URL", url)
    get_settings.cache_clear()
    migrate_database()
    yield url
    get_settings.cache_clear()
