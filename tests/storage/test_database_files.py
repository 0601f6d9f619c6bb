"""A database is created only on purpose (`storage migrate`/`reset`, the stack, or the embedded
default's first use); a missing, foreign or replaced file is a one-line refusal, never a fresh
empty database that would sell the same stock again."""

from __future__ import annotations

from pathlib import Path

import pytest

from storage.db import session_scope
from storage.errors import StorageUnavailable
from tests.support import child_env, run_module


def storage_command(path: Path, *args: str) -> tuple[int, str]:
    done = run_module("storage", *args, env=child_env(FLOWFORGE_DB_PATH=str(path)))
    return done.returncode, done.stderr


@pytest.mark.e2e
def test_a_missing_database_is_refused_and_not_created(tmp_path):
    path = tmp_path / "nowhere" / "ff.sqlite3"
    for command in (["audit"], ["snapshot"], ["receive", "SKU-001", "5"]):
        code, stderr = storage_command(path, *command)
        assert code == 2
        assert stderr.splitlines() == [
            f"python -m storage: error: database {path} does not exist: create it with "
            "`python -m storage migrate` (or `reset`), or point FLOWFORGE_DB_PATH / "
            "DATABASE_URL at the existing one"
        ]
    assert not path.parent.exists()
    assert storage_command(path, "migrate")[0] == 0
    assert storage_command(path, "audit")[0] == 0


@pytest.mark.e2e
def test_a_file_in_the_way_of_the_directory_is_one_line(tmp_path):
    (tmp_path / "file").write_text("a regular file where a directory should be")
    code, stderr = storage_command(tmp_path / "file" / "ff.sqlite3", "migrate")
    assert code == 2
    assert stderr.splitlines() == [
        f"python -m storage: error: cannot create database {tmp_path}/file/ff.sqlite3: "
        "a file is in the way"
    ]


@pytest.mark.e2e
def test_a_file_that_is_not_sqlite_is_one_line(tmp_path):
    path = tmp_path / "ff.sqlite3"
    path.write_text("not a database, just text")
    code, stderr = storage_command(path, "audit")
    assert code == 2
    assert stderr.splitlines() == [
        f"python -m storage: error: cannot use database 'sqlite:///{path}': file is not a database"
    ]
    assert path.read_text() == "not a database, just text"


@pytest.mark.e2e
def test_a_driver_that_is_not_installed_is_one_line():
    done = run_module("storage", "audit", env=child_env(DATABASE_URL="mysql://u@localhost/db"))
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        "python -m storage: error: cannot use database 'mysql://u@localhost/db': "
        "No module named 'MySQLdb'"
    ]


@pytest.mark.e2e
def test_the_embedded_default_is_created_on_first_use(tmp_path):
    env = child_env()
    env.pop("FLOWFORGE_DB_PATH", None)
    done = run_module("storage", "audit", env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / ".flowforge" / "flowforge.sqlite3").is_file()


@pytest.mark.e2e
def test_a_removed_or_replaced_file_stops_a_running_process(db):
    with session_scope() as session:
        assert session.connection() is not None
    db.unlink()
    with (
        pytest.raises(
            StorageUnavailable, match="was removed or replaced since this process opened"
        ),
        session_scope(),
    ):
        pass
    code, stderr = storage_command(db, "migrate")
    assert code == 2 and f"but its journal does ({db.name}-wal" in stderr
    for journal in db.parent.glob(f"{db.name}-*"):
        journal.unlink()
    assert storage_command(db, "migrate")[0] == 0  # a new file at the same path
    with (
        pytest.raises(
            StorageUnavailable, match="was removed or replaced since this process opened"
        ),
        session_scope(),
    ):
        pass
