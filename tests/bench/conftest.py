"""One bench sitting shared by the tests of Prefect's floor (f) and of `--database postgres`:
`python -m bench --database postgres --orders 3 --modes b,f` (outputs in a temp dir), so the
Prefect server and the cluster start once."""

from __future__ import annotations

import json
import os
import subprocess
from typing import Any

import pytest

from bench import postgres
from tests.support import run_module


@pytest.fixture(scope="session")
def sitting(tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess, Any]:
    """(the bench's run, its JSON report); skipped where PostgreSQL is not installed."""
    if not postgres.available():
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL server binaries are missing in CI")
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) are not installed")
    out = tmp_path_factory.mktemp("bench-sitting")
    done = run_module(
        "bench",
        "--database",
        "postgres",
        "--orders",
        "3",
        "--modes",
        "b,f",
        "--json",
        str(out / "bench.json"),
        "--chart",
        str(out / "bench.png"),
        timeout=240,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done, json.loads((out / "bench.json").read_text())
