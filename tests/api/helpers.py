"""Factory helpers and fixtures for API tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

ORDER = {
    "product_id": "SKU-001",
    "quantity": 2,
    "customer_id": "cust-42",
    "payment_method": "tok_visa",
}


def order_body(**changes: Any) -> dict[str, Any]:
    return {**ORDER, **changes}


@pytest.fixture
def client(db: Path) -> Iterator[TestClient]:
    """The app on a fresh database with no Prefect server configured: every run stays pending."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from api.app import app

    with temporary_settings(restore_defaults={PREFECT_API_URL}), TestClient(app) as c:
        yield c
