"""Reconciliation with Stripe (when `FLOWFORGE_PAYMENT_PROVIDER=stripe`): the PaymentIntents
that moved money for an order (`metadata[order_id]`) and FlowForge's books must tell the same
story.

Stripe is listed first (every PaymentIntent, paged with `starting_after`: a list is strongly
consistent, a search is not), then the books are read. An order whose row changed after the
listing began, or that is still in progress, is left out: its books and the listing may each
be one step ahead of the other."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime

from sqlmodel import Session

from payments.client import Intent, ProviderError, stripe_gateway
from storage import payment_books
from storage.models import (
    SETTLED_STATUSES,
    ChargeRequestStatus,
    ChargeStatus,
    Payment,
    utcnow,
)
from storage.settings import get_settings


@dataclass(frozen=True)
class Listing:
    """Stripe's charges for orders (PaymentIntents that succeeded), listed from `taken_at` on
    (or why they could not be)."""

    taken_at: datetime
    charges: list[Intent] = field(default_factory=list)
    problem: str | None = None


def list_provider_charges() -> Listing | None:
    """Every PaymentIntent at Stripe that charged an order; None when charges stay in
    FlowForge's database."""
    client = stripe_gateway()
    if client is None:
        return None
    taken_at = utcnow()
    try:
        charges = [intent for intent in client.intents() if intent.order_id and intent.succeeded]
    except ProviderError as exc:
        problem = f"cannot reconcile with Stripe at {get_settings().stripe_api_base}"
        return Listing(taken_at, problem=f"{problem}: {exc}")
    return Listing(taken_at, charges)


def reconcile(session: Session, listing: Listing | None) -> list[str]:
    """One line per disagreement: every Stripe charge for an order is in FlowForge's books
    with the same state; no order is charged twice there; a failed or cancelled order has
    nothing unrefunded there; and every charge FlowForge booked at Stripe exists there."""
    if listing is None:
        return []
    if listing.problem:
        return [listing.problem]
    ours = payment_books.stripe_payments(session)
    order_ids = {c.order_id or "" for c in listing.charges} | {p.order_id for p in ours.values()}
    statuses = payment_books.settled_statuses(session, order_ids, since=listing.taken_at)
    requests = payment_books.request_statuses(session, order_ids)
    problems = []
    charged: dict[str, list[str]] = defaultdict(list)
    for charge in listing.charges:
        order_id = charge.order_id or ""
        if order_id in statuses and statuses[order_id] is None:
            continue  # in progress, or changed since the listing
        if not charge.refunded:
            charged[order_id].append(charge.id)
        problem = _charge_problem(
            charge, ours.get(charge.id), statuses.get(order_id), requests.get(order_id)
        )
        if problem:
            problems.append(problem)
    problems += [
        f"order {order_id} is charged {len(ids)} times at Stripe: {', '.join(ids)}"
        for order_id, ids in charged.items()
        if len(ids) > 1
    ]
    listed = {charge.id for charge in listing.charges}
    problems += [
        f"charge {payment.charge_id} of order {payment.order_id} is in FlowForge's books but "
        "not at Stripe"
        for payment in ours.values()
        if payment.charge_id not in listed and statuses.get(payment.order_id) is not None
    ]
    return problems


def _charge_problem(
    charge: Intent, payment: Payment | None, status: str | None, request: str | None
) -> str | None:
    state = "refunded" if charge.refunded else charge.status
    described = f"PaymentIntent {charge.id} ({state}, {charge.amount}) for order"
    if status is None:
        return f"{described} {charge.order_id} that FlowForge does not have"
    if payment is None:
        why = (
            f"; its charge request is {request}: FlowForge never heard the answer"
            if request in {ChargeRequestStatus.SENDING, ChargeRequestStatus.IN_DOUBT}
            else ""
        )
        return f"{described} {charge.order_id} ({status}) is not in FlowForge's books{why}"
    if _state(charge) != payment.status:
        return f"{described} {charge.order_id} is {payment.status} in FlowForge's books"
    if status in SETTLED_STATUSES and not charge.refunded:
        return f"{described} {charge.order_id} is not refunded, yet the order is {status}"
    return None


def _state(charge: Intent) -> ChargeStatus:
    """Stripe's charge in FlowForge's words."""
    return ChargeStatus.REFUNDED if charge.refunded else ChargeStatus.CHARGED
