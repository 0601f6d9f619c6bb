"""Factory helpers for API tests."""

from __future__ import annotations

from typing import Any

ORDER = {
    "product_id": "SKU-001",
    "quantity": 2,
    "customer_id": "cust-42",
    "payment_method": "tok_visa",
}


def order_body(**changes: Any) -> dict[str, Any]:
    return {**ORDER, **changes}
