"""Shared fixtures: a fresh SQLite database per test, one real Prefect server per session."""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

# Before anything imports Prefect or reads FlowForge settings.
os.environ.setdefault("PREFECT_HOME", tempfile.mkdtemp(prefix="flowforge-prefect-home-"))
os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
os.environ["DO_NOT_TRACK"] = "1"
os.environ["FLOWFORGE_RETRY_DELAYS"] = "0"
os.environ["FLOWFORGE_PAYMENT_OUTAGE_SECONDS"] = "0"  # the tests of that budget set their own
os.environ.pop("FAIL_AT", None)
os.environ.pop("CRASH_AT", None)
os.environ.pop("DATABASE_URL", None)

from storage.db import migrate_database  # noqa: E402
from storage.settings import get_settings  # noqa: E402

# fixtures that start a server or a process: a test that uses one is `e2e`
PROCESS_FIXTURES = frozenset({"prefect_server", "postgres_cluster", "provider"})


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark what a test starts, from the fixtures it uses: `postgres` for a PostgreSQL cluster,
    `e2e` for any server or process (modules that start processes by hand say so themselves),
    so `pytest -m "not e2e"` is the unit layer."""
    for item in items:
        fixtures = set(getattr(item, "fixturenames", ()))
        params = getattr(getattr(item, "callspec", None), "params", {})
        if "postgres_cluster" in fixtures or "postgresql" in params.values():
            item.add_marker(pytest.mark.postgres)
        if fixtures & PROCESS_FIXTURES or item.get_closest_marker("postgres"):
            item.add_marker(pytest.mark.e2e)
        if item.get_closest_marker("browser"):
            item.add_marker(pytest.mark.e2e)


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
    name += "_" + uuid.uuid4().hex[:8]  # parametrized names can share their first 40 letters
    url = postgres.create_database(postgres_cluster, name)
    monkeypatch.setenv("DATABASE_URL", url)
    get_settings.cache_clear()
    migrate_database()
    yield url
    get_settings.cache_clear()
    from storage import db as storage_db

    if (engine := storage_db._engines.pop(url, None)) is not None:
        engine.dispose()  # its pooled connections would pile up to max_connections


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest) -> object:
    """The test twice: on a fresh SQLite file (`db`), then a fresh PostgreSQL database (`pg_db`)."""
    return request.getfixturevalue("db" if request.param == "sqlite" else "pg_db")
