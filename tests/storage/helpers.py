"""Factory helpers for storage tests."""

from __future__ import annotations

from storage import operations
from storage.db import session_scope
from storage.models import OrderLine, Payment


def charge(key: str = "o1:payment", method: str = "tok_visa") -> Payment:
    with session_scope() as s:
        return operations.charge(
            s,
            order_id="o1",
            idempotency_key=key,
            amount=2000,
            payment_method=method,
            customer_id="c1",
        )


def cart(*lines: tuple[str, int]) -> list[OrderLine]:
    """Order lines from (product, units) pairs."""
    return [OrderLine(product_id=product, quantity=units) for product, units in lines]
