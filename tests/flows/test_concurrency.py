"""Several OS processes racing for scarce stock on one SQLite file never oversell."""

from __future__ import annotations

import json
import subprocess

from tests.conftest import PYTHON, ROOT, assert_audit_clean, child_env
from tests.flows.helpers import engine_state


def test_racing_processes_never_oversell(db, prefect_server):
    # SKU-002 holds 10 units; six customers want 3 each: exactly three can be served.
    env = child_env(prefect_server)
    procs = [
        subprocess.Popen(
            [
                PYTHON,
                "-m",
                "flows.fulfill",
                "--product",
                "SKU-002",
                "--quantity",
                "3",
                "--customer",
                f"racer-{i}",
                "--payment-method",
                "tok_visa",
                "--json",
            ],
            env=env,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(6)
    ]
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=180)
        assert proc.returncode in (0, 1), err[-2000:]
        results.append(json.loads(out))
    statuses = sorted(r["status"] for r in results)
    assert statuses == ["completed"] * 3 + ["failed"] * 3
    for r in results:
        if r["status"] == "failed":
            assert "insufficient stock for SKU-002" in r["failure_reason"]
    sku = next(p for p in engine_state()["inventory"] if p["product_id"] == "SKU-002")
    assert (sku["available"], sku["reserved"]) == (1, 9)
    assert len(engine_state()["payments"]) == 3
    assert_audit_clean()
