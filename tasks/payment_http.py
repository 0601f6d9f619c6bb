"""Charging and refunding at the payment provider over HTTP (`FLOWFORGE_PAYMENT_URL`; see
docs/payments.md). Nothing is held open while a request is out: the charge request is written
(committed) before it leaves, and its answer is recorded in a transaction of its own.

A timeout or a dropped connection is *in doubt*, not failed: the next attempt sends the same
idempotency key and gets the first charge back, and a refund asks the provider by that key, so
a charge whose answer was lost is still refunded when the order fails."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TypeVar

from sqlmodel import Session

from payments.client import provider_client
from provider.client import (
    AlreadyRefunded,
    Charge,
    Declined,
    ProviderClient,
    ProviderError,
    Rejected,
    Unreachable,
)
from storage import payment_books, saga_log
from storage.errors import CardDeclined, FinalError
from storage.models import ChargeRequest, ChargeRequestStatus
from storage.settings import get_settings
from tasks.saga_task import Fence

T = TypeVar("T")
OUTAGE_FIRST_DELAY, OUTAGE_MAX_DELAY = 0.25, 2.0


class ProviderNotConfigured(RuntimeError):
    """A charge went to a payment provider, and this process has none configured."""


class PaymentRejected(FinalError):
    """The provider refused the request itself (a 4xx that is not a decline: a bad body or
    key, an unknown id, a key reused): retrying the same request cannot help."""


@contextmanager
def rejections_final() -> Iterator[None]:
    """Raise a request the provider refused as `PaymentRejected`, which is never retried."""
    try:
        yield
    except Rejected as exc:
        raise PaymentRejected(str(exc)) from exc


class ChargeMismatch(PaymentRejected):
    """The provider's charge under our key is not this order's: never retried, never refunded
    by us; a person must look."""


class ChargeMissing(PaymentRejected):
    """The provider holds no charge under our key although it answered us with one (it lost
    its records?): nothing can be refunded, and nothing may be called undone; a person must
    look."""


def outlasting_outage(call: Callable[[], T]) -> T:
    """`call()`, tried again while the provider is unreachable — nothing was sent, so nothing
    can have happened — for up to `FLOWFORGE_PAYMENT_OUTAGE_SECONDS` (a provider's restart),
    backing off from 0.25 s to 2 s; then the step's own retries take over. The order's
    driver keeps its lease meanwhile."""
    deadline = time.monotonic() + get_settings().payment_outage_seconds
    delay = OUTAGE_FIRST_DELAY
    while True:
        try:
            return call()
        except Unreachable:
            if time.monotonic() + delay > deadline:
                raise
            time.sleep(delay)
            delay = min(2 * delay, OUTAGE_MAX_DELAY)


def _outcome(error: ProviderError) -> ChargeRequestStatus:
    if isinstance(error, Unreachable):
        return ChargeRequestStatus.UNREACHABLE
    if isinstance(error, Declined):
        return ChargeRequestStatus.DECLINED
    return ChargeRequestStatus.IN_DOUBT  # even a 4xx: the key may hold a charge (409)


def charge(
    client: ProviderClient,
    fence: Fence,
    *,
    order_id: str,
    idempotency_key: str,
    amount_of: Callable[[Session], int],
    payment_method: str,
    customer_id: str,
) -> Charge:
    """Charge at the provider under `idempotency_key`; the charge, recorded in `payments`.
    A decline is `CardDeclined`; anything else the provider or the network says is raised as
    the client's error (retried by the step unless it is a 4xx)."""
    with fence() as session:
        amount = amount_of(session)
        payment_books.begin_charge_request(
            session, order_id=order_id, idempotency_key=idempotency_key, amount=amount
        )
    try:
        result = outlasting_outage(
            lambda: client.charge(
                idempotency_key=idempotency_key,
                amount=amount,
                payment_method=payment_method,
                order_id=order_id,
                customer=customer_id,
            )
        )
    except ProviderError as exc:
        with fence() as session:
            payment_books.end_charge_request(
                session, idempotency_key=idempotency_key, status=_outcome(exc), message=str(exc)
            )
        if isinstance(exc, Declined):
            raise CardDeclined(payment_method) from exc
        raise
    if result.refunded or not _belongs(result, order_id=order_id, amount=amount):
        mismatch = ChargeMismatch(_mismatch(result, idempotency_key))
        with fence() as session:
            payment_books.end_charge_request(
                session,
                idempotency_key=idempotency_key,
                status=ChargeRequestStatus.IN_DOUBT,
                message=str(mismatch),
            )
        raise mismatch
    with fence() as session:
        payment_books.end_charge_request(
            session,
            idempotency_key=idempotency_key,
            status=ChargeRequestStatus.CHARGED,
            charge_id=result.id,
        )
        _record(session, result, payment_method=payment_method, customer_id=customer_id)
        saga_log.update_order(session, order_id=order_id, amount=result.amount)
    return result


def refund(fence: Fence, *, order_id: str, request: ChargeRequest) -> bool:
    """Refund the charge the provider holds under the request's idempotency key, found by
    asking it; False when it holds none, once a request in doubt cannot still be on its way
    (connect + read timeout after it left). `ChargeMissing` when it holds none although it
    answered this request with a charge."""
    client = provider_client()
    if client is None:
        raise ProviderNotConfigured(
            f"order {order_id} was charged at a payment provider: set FLOWFORGE_PAYMENT_URL"
        )
    found = outlasting_outage(lambda: client.find_charge(request.idempotency_key))
    settings = get_settings()
    window = settings.payment_connect_timeout + settings.payment_read_timeout
    if found is None and (wait := payment_books.in_flight_for(request, within=window)):
        time.sleep(wait)  # a request in doubt may still be on its way: give it its time
        found = outlasting_outage(lambda: client.find_charge(request.idempotency_key))
    if found is None and request.status == ChargeRequestStatus.CHARGED:
        raise ChargeMissing(
            f"the provider holds no charge under {request.idempotency_key}, although it "
            f"answered it with charge {request.charge_id}: not refunded (did the provider "
            "lose its records?)"
        )
    if found is None:
        return False
    if not _belongs(found, order_id=order_id, amount=request.amount):
        raise ChargeMismatch(_mismatch(found, request.idempotency_key))
    refunded = not found.refunded
    if refunded:
        try:
            outlasting_outage(
                lambda: client.refund(charge_id=found.id, idempotency_key=f"{order_id}:refund")
            )
        except AlreadyRefunded:
            refunded = False
    with fence() as session:
        payment_books.end_charge_request(  # no longer in doubt: it charged
            session,
            idempotency_key=request.idempotency_key,
            status=ChargeRequestStatus.CHARGED,
            charge_id=found.id,
            message=request.message,
        )
        _record(
            session, found, payment_method=found.payment_method, customer_id=found.customer or ""
        )
        payment_books.mark_refunded(session, charge_id=found.id)
    return refunded


def _belongs(found: Charge, *, order_id: str, amount: int) -> bool:
    return found.order_id == order_id and found.amount == amount


def _mismatch(found: Charge, key: str) -> str:
    state = ", refunded" if found.refunded else ""
    return (
        f"the provider's charge {found.id} under {key} is for order {found.order_id}, "
        f"{found.amount}{state}: not this order's (was the key used before, by a database "
        "since reset?)"
    )


def _record(session: Session, found: Charge, *, payment_method: str, customer_id: str) -> None:
    payment_books.record_charge(
        session,
        charge_id=found.id,
        order_id=found.order_id or "",
        idempotency_key=found.idempotency_key,
        amount=found.amount,
        payment_method=payment_method,
        customer_id=customer_id,
        refunded=found.refunded,
        created_at=datetime.fromtimestamp(found.created, UTC),
    )
