"""`python -m provider` as a process: argument errors, clean stops, a leaf package."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.provider.helpers import running_provider
from tests.support import ROOT, child_env


@pytest.mark.e2e
@pytest.mark.parametrize(
    "args",
    [
        ["--faults", "{not json"],
        ["--faults", '{"rules": [{"kind": "explode", "on": "payment_intents.confirm"}]}'],
        ["--faults", '{"rules": [{"kind": "drop", "on": "charges"}]}'],
        ["--faults", '{"slow_seconds": 1e309}'],
        ["--faults", '{"latency_ms": 3600000}'],
        ["--api-key", ""],
        ["--port", "http"],
        ["--port", "70000"],
    ],
)
def test_bad_arguments_exit_2_with_one_line(args: list[str], tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "provider", "--db", str(tmp_path / "p.sqlite3"), "--create", *args],
        cwd=ROOT,
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 2
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "p.sqlite3").exists()


@pytest.mark.e2e
def test_bad_faults_in_the_environment_exit_2(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "provider", "--db", str(tmp_path / "p.sqlite3")],
        cwd=ROOT,
        env=child_env(PROVIDER_FAULTS='{"latency_ms": -1}'),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "python -m provider: error: invalid PROVIDER_FAULTS: "
        "latency_ms: Input should be greater than or equal to 0"
    ]


def provider_exits(env: dict[str, str], *args: str) -> list[str]:
    """`python -m provider` that must fail at once (exit 2): its stderr lines."""
    done = subprocess.run(
        [sys.executable, "-m", "provider", "--port", "0", *args],
        cwd=ROOT,
        env=child_env(**env),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 2, done.stderr
    return done.stderr.strip().splitlines()


@pytest.mark.e2e
def test_an_empty_key_in_the_environment_exits_2(tmp_path: Path) -> None:
    db = str(tmp_path / "p.sqlite3")
    assert provider_exits({"PROVIDER_API_KEY": ""}, "--db", db, "--create") == [
        "python -m provider: error: PROVIDER_API_KEY must not be empty"
    ]


@pytest.mark.e2e
def test_a_missing_database_is_created_only_with_create(tmp_path: Path) -> None:
    db = tmp_path / "p.sqlite3"
    assert provider_exits({}, "--db", str(db)) == [
        f"python -m provider: error: database {db} does not exist: start with --create to make"
        " a new one, or point --db at the existing one"
    ]
    assert not db.exists()
    with running_provider(db, create=True):
        assert db.is_file()
    with running_provider(db, create=False):  # it exists now
        assert db.is_file()


@pytest.mark.e2e
def test_a_deleted_database_with_its_journal_left_is_not_recreated(tmp_path: Path) -> None:
    db = tmp_path / "p.sqlite3"
    db.with_name("p.sqlite3-wal").write_bytes(b"")
    assert provider_exits({}, "--db", str(db), "--create") == [
        f"python -m provider: error: database {db} does not exist but its journal does"
        " (p.sqlite3-wal): was it deleted? restore it, or move the journal away to start afresh"
    ]
    assert not db.exists()


@pytest.mark.e2e
def test_a_database_that_is_not_one_exits_2(tmp_path: Path) -> None:
    db = tmp_path / "p.sqlite3"
    db.write_text("not a database, just text that is long enough to fill a header" * 4)
    assert provider_exits({}, "--db", str(db)) == [
        f"python -m provider: error: cannot use database {db}: file is not a database"
    ]


@pytest.mark.e2e
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_signals_stop_it_cleanly(signum: signal.Signals, tmp_path: Path) -> None:
    db = tmp_path / "deep" / "dir" / "p.sqlite3"
    with running_provider(db) as running:
        running.process.send_signal(signum)
        returncode = running.process.wait(timeout=10)
        stderr = running.log.read_text()
    # uvicorn shuts down gracefully, then re-raises SIGTERM to die of it (the Unix convention).
    assert returncode in (0, -signum), stderr
    assert "Finished server process" in stderr and "Traceback" not in stderr
    assert db.exists()


@pytest.mark.e2e
def test_the_package_is_a_leaf() -> None:
    code = (
        "import sys, provider.app, provider.ledger, provider.__main__\n"
        "ours = {'flows', 'tasks', 'payments', 'storage', 'api', 'dashboard', 'deployments'}\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ours))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=child_env(), capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
