"""Fixtures for the dashboard tests: a database filled by running real sagas."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from storage.db import migrate_database
from storage.settings import get_settings
from storage.views import OrderSummary
from tests.flows.helpers import place

# (label, FAIL_AT, order arguments): one order per outcome the page must show
REAL_ORDERS: tuple[tuple[str, str, dict[str, Any]], ...] = (
    ("completed", "", {"quantity": 2}),
    ("completed-sku3", "", {"product_id": "SKU-003", "quantity": 4}),
    ("retried", "payment:1", {"quantity": 1}),
    ("inventory-check", "inventory-check", {}),
    ("inventory", "inventory", {}),
    ("payment", "payment", {}),
    ("warehouse", "warehouse", {"product_id": "SKU-002"}),
    ("declined", "", {"payment_method": "tok_declined_insufficient_funds"}),
    ("needs_attention", "warehouse,refund", {"quantity": 3}),
)


@dataclass(frozen=True)
class Filled:
    """A database file and the summaries of the orders run into it, by label."""

    path: Path
    orders: dict[str, OrderSummary]


@pytest.fixture(scope="module")
def filled(prefect_server: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Filled]:
    """One database per module, filled by running every order of REAL_ORDERS for real."""
    path = tmp_path_factory.mktemp("filled") / "flowforge.sqlite3"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("FLOWFORGE_DB_PATH", str(path))
        get_settings.cache_clear()
        migrate_database()
        orders = {}
        for label, fail_at, arguments in REAL_ORDERS:
            patch.setenv("FAIL_AT", fail_at)
            orders[label] = place(customer_id=f"cust-{label}", **arguments)
        patch.delenv("FAIL_AT")
        yield Filled(path, orders)
    get_settings.cache_clear()
