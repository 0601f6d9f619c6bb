"""Several OS processes racing for scarce stock on one SQLite file never oversell."""

from __future__ import annotations

from tests.flows.helpers import engine_state, race
from tests.support import assert_audit_clean


def test_racing_processes_never_oversell(db, prefect_server):
    # SKU-002 holds 10 units; six customers want 3 each: exactly three can be served.
    results = race(prefect_server, 6, product_id="SKU-002", quantity=3)
    assert sorted(r["status"] for r in results) == ["completed"] * 3 + ["failed"] * 3
    for r in results:
        if r["status"] == "failed":
            assert "insufficient stock for SKU-002" in r["failure_reason"]
    sku = next(p for p in engine_state()["inventory"] if p["product_id"] == "SKU-002")
    assert (sku["available"], sku["reserved"]) == (1, 9)
    assert len(engine_state()["payments"]) == 3
    assert_audit_clean()
