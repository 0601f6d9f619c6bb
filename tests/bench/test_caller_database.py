"""`python -m bench` runs every mode on its own fresh database, whatever database the caller's
environment configures (a missing one must be neither needed nor created)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support import child_env, run_module

pytestmark = pytest.mark.e2e  # starts servers or processes


@pytest.mark.parametrize("variable", ["FLOWFORGE_DB_PATH", "DATABASE_URL"])
def test_caller_database_is_ignored(tmp_path: Path, variable: str) -> None:
    caller_db = tmp_path / "a-service" / "flowforge.sqlite3"
    value = str(caller_db) if variable == "FLOWFORGE_DB_PATH" else f"sqlite:///{caller_db}"
    out = tmp_path / "out"
    done = run_module(
        "bench",
        "--orders",
        "1",
        "--modes",
        "floor",
        "--json",
        str(out / "bench.json"),
        "--chart",
        str(out / "bench.png"),
        env=child_env(**{variable: value}),
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Traceback" not in done.stderr
    (mode,) = json.loads((out / "bench.json").read_text())["modes"]
    assert mode["status"] == "ok" and mode["counts"] == mode["expected"], mode["reason"]
    assert not caller_db.parent.exists()
