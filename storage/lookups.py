"""Single-record lookups for the HTTP API."""

from __future__ import annotations

from typing import Any

from sqlmodel import Session

from storage.models import Payment
from storage.snapshot import payment_dict


def payment(session: Session, *, charge_id: str) -> dict[str, Any] | None:
    """The payment with this charge id, or None."""
    row = session.get(Payment, charge_id)
    return payment_dict(row) if row else None
