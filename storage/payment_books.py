"""The local books of payments made at Stripe: each charge request (the order's PaymentIntent,
its id written before the confirmation leaves) with what is known of its outcome; the
PaymentIntents that charged as `payments` rows (`provider = stripe`, `charge_id` the intent's
id); and what the reconciliation reads of them. Only the SQL lives here: the Stripe client, and
the comparison with what Stripe says, are in payments/."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import update
from sqlmodel import Session, col, select

from storage.db import insert_once
from storage.models import (
    ACTIVE_STATUSES,
    ChargeRequest,
    ChargeRequestStatus,
    ChargeStatus,
    Order,
    Payment,
    PaymentProvider,
    utcnow,
)

# a request in one of these may have reached the provider: only the provider can say more
MAY_HAVE_CHARGED = frozenset(
    {ChargeRequestStatus.SENDING, ChargeRequestStatus.IN_DOUBT, ChargeRequestStatus.CHARGED}
)


class KeyConflict(RuntimeError):
    """Another charge is already booked under this idempotency key."""


def charge_request(session: Session, *, idempotency_key: str) -> ChargeRequest | None:
    return session.get(ChargeRequest, idempotency_key)


def begin_charge_request(
    session: Session, *, order_id: str, idempotency_key: str, amount: int, charge_id: str | None
) -> ChargeRequest:
    """Record that a charge request is about to leave (for the provider's object `charge_id`,
    if there is one yet). A request left `sending` by an attempt that never learnt its outcome
    (its process died) is in doubt from now on."""
    request = charge_request(session, idempotency_key=idempotency_key)
    if request is None:
        request = ChargeRequest(
            order_id=order_id, idempotency_key=idempotency_key, amount=amount, charge_id=charge_id
        )
        if not insert_once(session, request):
            raise RuntimeError(f"charge request {idempotency_key} was written concurrently")
    elif request.status == ChargeRequestStatus.SENDING:
        request.status = ChargeRequestStatus.IN_DOUBT
        request.reached_at = request.attempted_at
    elif request.status == ChargeRequestStatus.UNREACHABLE:
        request.status = ChargeRequestStatus.SENDING
    request.charge_id = charge_id or request.charge_id
    request.attempts += 1
    request.attempted_at = utcnow()
    session.add(request)
    return request


def end_charge_request(
    session: Session,
    *,
    idempotency_key: str,
    status: ChargeRequestStatus,
    charge_id: str | None = None,
    message: str = "",
) -> None:
    """Record the attempt's outcome. `unreachable` only when nothing earlier may have reached the
    provider: an earlier request in doubt stays in doubt (and keeps when it left)."""
    request = charge_request(session, idempotency_key=idempotency_key)
    if request is None:
        raise LookupError(f"no charge request {idempotency_key}")
    keep = (
        status == ChargeRequestStatus.UNREACHABLE and request.status != ChargeRequestStatus.SENDING
    )
    if not keep:
        request.status = status
    if status != ChargeRequestStatus.UNREACHABLE:
        request.reached_at = request.attempted_at
    request.charge_id = charge_id or request.charge_id
    request.message = message
    session.add(request)


def record_charge(
    session: Session,
    *,
    charge_id: str,
    order_id: str,
    idempotency_key: str,
    amount: int,
    payment_method: str,
    customer_id: str,
    refunded: bool,
    created_at: datetime | None = None,
) -> None:
    """The provider's charge as a `payments` row (once per charge id), its status as the
    provider says; `KeyConflict` when another charge holds its idempotency key."""
    payment = Payment(
        charge_id=charge_id,
        order_id=order_id,
        idempotency_key=idempotency_key,
        amount=amount,
        payment_method=payment_method,
        customer_id=customer_id,
        provider=PaymentProvider.STRIPE,
        created_at=created_at or utcnow(),
    )
    if session.get(Payment, charge_id) is None and not insert_once(session, payment):
        raise KeyConflict(f"payments already holds another charge under {idempotency_key}")
    if refunded:
        mark_refunded(session, charge_id=charge_id)


def mark_refunded(session: Session, *, charge_id: str) -> bool:
    """The provider refunded this charge; False when it was already marked."""
    result = session.execute(
        update(Payment)
        .where(col(Payment.charge_id) == charge_id, col(Payment.status) == ChargeStatus.CHARGED)
        .values(status=ChargeStatus.REFUNDED, refunded_at=utcnow())
    )
    return result.rowcount == 1


def stripe_payments(session: Session) -> dict[str, Payment]:
    """Every charge booked at Stripe, by its PaymentIntent's id."""
    rows = session.exec(select(Payment).where(Payment.provider == PaymentProvider.STRIPE)).all()
    return {payment.charge_id: payment for payment in rows}


def settled_statuses(
    session: Session, order_ids: set[str], *, since: datetime
) -> dict[str, str | None]:
    """Each existing order's status; None for one in progress or changed `since`."""
    rows = session.exec(
        select(Order.order_id, Order.status, Order.updated_at).where(
            col(Order.order_id).in_(sorted(order_ids))
        )
    ).all()
    return {
        order_id: None
        if status in ACTIVE_STATUSES or updated.replace(tzinfo=updated.tzinfo or UTC) >= since
        else status
        for order_id, status, updated in rows
    }


def request_statuses(session: Session, order_ids: set[str]) -> dict[str, str]:
    """The status of each order's charge request, for the orders that have one."""
    rows = session.exec(
        select(ChargeRequest.order_id, ChargeRequest.status).where(
            col(ChargeRequest.order_id).in_(sorted(order_ids))
        )
    ).all()
    return dict(rows)
