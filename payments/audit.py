"""The audit: every invariant of the README's Invariants section (storage/audit.py), and the
reconciliation with the payment provider when there is one. An empty list means clean."""

from __future__ import annotations

from sqlmodel import Session

from payments.reconciliation import list_provider_charges, reconcile
from storage.audit import broken_invariants


def audit(session: Session) -> list[str]:
    """Return one line per violated invariant and per disagreement with the payment provider."""
    listing = list_provider_charges()  # before the books are read: see payments/reconciliation
    return [*broken_invariants(session), *reconcile(session, listing)]
