"""`python -m bench --database postgres`: the batch on a throwaway PostgreSQL cluster the bench
starts and removes (the sitting in tests/bench/conftest.py), its books balanced; the modes that
run on SQLite only, and a machine without PostgreSQL, are one line and exit 2."""

from __future__ import annotations

from typing import Any

import pytest

import bench.__main__ as bench_main
from bench import postgres


def mode(report: dict[str, Any], letter: str) -> dict[str, Any]:
    """The report's entry for mode `letter`."""
    return next(found for found in report["modes"] if found["mode"] == letter)


def test_sqlite_only_modes_are_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        bench_main.main(["--database", "postgres", "--modes", "a,b"])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "a (service) run on SQLite only" in err


def test_missing_postgresql_is_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(postgres, "available", lambda: False)
    with pytest.raises(SystemExit) as exited:
        bench_main.main(["--database", "postgres", "--quick"])
    assert exited.value.code == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1 and "initdb, pg_ctl" in err


@pytest.mark.e2e
@pytest.mark.postgres
def test_batch_on_postgres_balances_its_books(sitting: tuple[Any, dict[str, Any]]) -> None:
    done, report = sitting
    assert report["database"] == "postgres" and "database: PostgreSQL" in done.stdout
    batch = mode(report, "b")
    assert batch["status"] == "ok" and batch["audit"] == "clean", batch["reason"]
    assert batch["counts"] == batch["expected"] == {"failed": 1, "completed": 2}
