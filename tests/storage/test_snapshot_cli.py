"""`python -m storage snapshot` still prints everything: the API pages, the admin CLI does not."""

from __future__ import annotations

import json

import pytest

from bench.factory import fill_orders
from storage.db import session_scope
from storage.snapshot import snapshot
from tests.support import run_module

ORDERS = 150  # more than a page of the API's (100)


@pytest.mark.e2e
def test_the_cli_snapshot_prints_every_order_oldest_first(database):
    fill_orders(ORDERS)
    printed = run_module("storage", "snapshot")
    assert printed.returncode == 0, printed.stderr
    everything = json.loads(printed.stdout)
    assert [order["order_id"] for order in everything["orders"]] == [
        f"bulk-{n:06d}" for n in range(ORDERS)
    ]
    with session_scope(readonly=True) as session:
        assert everything == snapshot(session).model_dump(mode="json")
    assert len(everything["payments"]) > 100
    assert len(everything["warehouse"]) > 100
