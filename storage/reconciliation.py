"""Reconciliation with the payment provider (when `FLOWFORGE_PAYMENT_URL` is set): the
provider's charges and FlowForge's books must tell the same story. Orders still in progress
are left out: their books may lag the provider by one transaction."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from sqlmodel import Session, col, select

from provider.client import Charge, ProviderClient, ProviderError
from storage.models import (
    ACTIVE_STATUSES,
    SETTLED_STATUSES,
    ChargeStatus,
    Order,
    Payment,
    PaymentProvider,
)
from storage.settings import get_settings


def provider_problems(session: Session) -> list[str]:
    """One line per disagreement with the configured provider; none without one."""
    settings = get_settings()
    if not settings.payment_url:
        return []
    try:
        with ProviderClient(
            settings.payment_url,
            settings.payment_api_key,
            connect_timeout=settings.payment_connect_timeout,
            read_timeout=settings.payment_read_timeout,
        ) as client:
            charges = list(client.charges())
    except ProviderError as exc:
        return [f"cannot reconcile with the payment provider at {settings.payment_url}: {exc}"]
    return reconcile(session, charges)


def reconcile(session: Session, charges: Iterable[Charge]) -> list[str]:
    """Every provider charge for an order is in FlowForge's books with the same state; no order
    is charged twice there; a failed or cancelled order has nothing unrefunded there; and every
    charge FlowForge recorded at the provider exists there."""
    ours = {
        payment.charge_id: payment
        for payment in session.exec(
            select(Payment).where(Payment.provider == PaymentProvider.HTTP)
        ).all()
    }
    theirs = [charge for charge in charges if charge.order_id]
    statuses = _order_statuses(
        session,
        {charge.order_id or "" for charge in theirs} | {p.order_id for p in ours.values()},
    )
    problems = []
    charged: dict[str, list[str]] = defaultdict(list)
    for charge in theirs:
        order_id = charge.order_id or ""
        status = statuses.get(order_id)
        if status in ACTIVE_STATUSES:
            continue
        if not charge.refunded:
            charged[order_id].append(charge.id)
        problem = _charge_problem(charge, ours.get(charge.id), status)
        if problem:
            problems.append(problem)
    problems += [
        f"order {order_id} is charged {len(ids)} times at the provider: {', '.join(ids)}"
        for order_id, ids in charged.items()
        if len(ids) > 1
    ]
    known = {charge.id for charge in theirs}
    problems += [
        f"charge {payment.charge_id} of order {payment.order_id} is in FlowForge's books but "
        "not at the provider"
        for payment in ours.values()
        if payment.charge_id not in known and statuses.get(payment.order_id) not in ACTIVE_STATUSES
    ]
    return problems


def _order_statuses(session: Session, order_ids: set[str]) -> dict[str, str]:
    rows = session.exec(
        select(Order.order_id, Order.status).where(col(Order.order_id).in_(sorted(order_ids)))
    ).all()
    return dict(rows)


def _charge_problem(charge: Charge, payment: Payment | None, status: str | None) -> str | None:
    described = f"provider charge {charge.id} ({charge.status}, {charge.amount}) for order"
    if status is None:
        return f"{described} {charge.order_id} that FlowForge does not have"
    if payment is None:
        return f"{described} {charge.order_id} ({status}) is not in FlowForge's books"
    if _state(charge) != payment.status:
        return f"{described} {charge.order_id} is {payment.status} in FlowForge's books"
    if status in SETTLED_STATUSES and not charge.refunded:
        return f"{described} {charge.order_id} is not refunded, yet the order is {status}"
    return None


def _state(charge: Charge) -> ChargeStatus:
    """The provider's charge in FlowForge's words."""
    return ChargeStatus.REFUNDED if charge.refunded else ChargeStatus.CHARGED
