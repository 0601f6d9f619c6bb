"""Charging and refunding at Stripe (`FLOWFORGE_PAYMENT_PROVIDER=stripe`; see docs/payments.md),
built on Stripe's guarantees. The order's PaymentIntent is created unconfirmed (no money moves)
and its id recorded (committed) before the confirmation, the one request that moves money,
leaves under the order's idempotency key. Nothing is held open while a request is out.

An answer that never came is *in doubt*, not failed: the next attempt retrieves the intent by its
id (strongly consistent) and confirms it only if it has not been; the refund retrieves it too,
refunds it if it succeeded, or cancels it if it did not — after which it can never move money."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TypeVar

from sqlmodel import Session

from payments.client import (
    AlreadyRefunded,
    Declined,
    Intent,
    KeyReused,
    ProviderError,
    Rejected,
    StripeGateway,
    UnexpectedState,
    Unreachable,
    stripe_gateway,
)
from storage import operations, payment_books, saga_log
from storage.errors import CardDeclined, FinalError
from storage.models import ChargeRequest, ChargeRequestStatus
from storage.settings import get_settings
from tasks.saga_task import Fence

T = TypeVar("T")
OUTAGE_FIRST_DELAY, OUTAGE_MAX_DELAY = 0.25, 2.0


class ProviderNotConfigured(RuntimeError):
    """A charge went to Stripe, and this process does not use Stripe."""


class IntentMoved(RuntimeError):
    """The intent succeeded while the refund was canceling it: the next attempt refunds it."""


class PaymentRejected(FinalError):
    """Stripe refused the request itself (a 4xx that is not a decline: a bad parameter or key,
    an unknown id, an idempotency key used with other parameters): retrying cannot help."""


@contextmanager
def rejections_final() -> Iterator[None]:
    """Raise a request Stripe refused as `PaymentRejected`, which is never retried."""
    try:
        yield
    except Rejected as exc:
        raise PaymentRejected(str(exc)) from exc


class ChargeMismatch(PaymentRejected):
    """What Stripe holds under our key is not this order's: never retried, never refunded by
    us; a person must look."""


class ChargeMissing(PaymentRejected):
    """Stripe holds no PaymentIntent under the id it gave us (it lost its records?): nothing can
    be refunded, and nothing may be called undone; a person must look."""


class PaymentIncomplete(PaymentRejected):
    """The intent waits for what a server cannot give (a customer's authentication): the refund
    cancels it."""


def outlasting_outage(call: Callable[[], T]) -> T:
    """`call()`, tried again while Stripe is unreachable — nothing was sent, so nothing can have
    happened — for up to `FLOWFORGE_PAYMENT_OUTAGE_SECONDS`, backing off from 0.25 s to 2 s;
    then the step's own retries take over. The order's driver keeps its lease meanwhile."""
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
    return ChargeRequestStatus.IN_DOUBT  # even a 4xx: the refund asks Stripe all the same


def charge(
    client: StripeGateway,
    fence: Fence,
    *,
    order_id: str,
    idempotency_key: str,
    amount_of: Callable[[Session], int],
    payment_method: str,
    customer_id: str,
) -> str:
    """Charge the order at Stripe: the id of its PaymentIntent, succeeded and recorded in
    `payments` (or of the charge a process on the embedded provider already made: never a
    second one). A decline is `CardDeclined`; anything else Stripe or the network says is
    raised as the client's error (retried by the step unless it is a 4xx)."""
    with fence() as session:
        if charged := operations.embedded_charge(session, idempotency_key=idempotency_key):
            return charged.charge_id
        amount = amount_of(session)
        request = payment_books.charge_request(session, idempotency_key=idempotency_key)
    intent_id = request.charge_id if request else None
    if intent_id is None:
        intent_id = _create(
            client,
            fence,
            order_id=order_id,
            idempotency_key=idempotency_key,
            amount=amount,
            payment_method=payment_method,
            customer_id=customer_id,
        )
    with fence() as session:
        request = payment_books.begin_charge_request(
            session,
            order_id=order_id,
            idempotency_key=idempotency_key,
            amount=amount,
            charge_id=intent_id,
        )
        asked_before = request.attempts > 1
    try:
        intent = _confirmed(client, intent_id, idempotency_key, asked_before=asked_before)
    except ProviderError as exc:
        _end(fence, idempotency_key, _outcome(exc), message=str(exc))
        if isinstance(exc, Declined):
            raise CardDeclined(payment_method) from exc
        raise
    if not intent.succeeded:
        incomplete = PaymentIncomplete(f"PaymentIntent {intent.id} is {intent.status}")
        _end(fence, idempotency_key, ChargeRequestStatus.IN_DOUBT, message=str(incomplete))
        raise incomplete
    if intent.refunded or not _belongs(intent, order_id=order_id, amount=amount):
        mismatch = ChargeMismatch(_mismatch(intent, idempotency_key))
        _end(fence, idempotency_key, ChargeRequestStatus.IN_DOUBT, message=str(mismatch))
        raise mismatch
    with fence() as session:
        payment_books.end_charge_request(
            session,
            idempotency_key=idempotency_key,
            status=ChargeRequestStatus.CHARGED,
            charge_id=intent.id,
        )
        _record(session, intent, idempotency_key)
        saga_log.update_order(session, order_id=order_id, amount=intent.amount)
    return intent.id


def _confirmed(client: StripeGateway, intent_id: str, key: str, *, asked_before: bool) -> Intent:
    """The intent, confirmed under `key`. When an earlier attempt may have confirmed it, it is
    retrieved first (strongly consistent) and confirmed only if it has not been."""
    intent = outlasting_outage(lambda: client.retrieve(intent_id)) if asked_before else None
    if intent is None or intent.status == "requires_confirmation":
        return outlasting_outage(lambda: client.confirm(intent_id, idempotency_key=key))
    if intent.status == "requires_payment_method":  # an earlier confirmation was declined
        raise Declined(f"payment_intents.retrieve {intent_id}: the card was declined")
    return intent


def _create(
    client: StripeGateway,
    fence: Fence,
    *,
    order_id: str,
    idempotency_key: str,
    amount: int,
    payment_method: str,
    customer_id: str,
) -> str:
    """The order's PaymentIntent, created unconfirmed under a key of its own (a lost answer is
    learnt by asking again); its id. A key that holds another request's intent is recorded in
    doubt and refused as `ChargeMismatch`: what it holds is not this order's."""
    try:
        intent = outlasting_outage(
            lambda: client.create_intent(
                order_id=order_id,
                customer_id=customer_id,
                amount=amount,
                payment_method=payment_method,
                idempotency_key=f"{idempotency_key}:create",
            )
        )
    except KeyReused as exc:
        mismatch = ChargeMismatch(f"{exc} (was the key used before, by a database since reset?)")
        with fence() as session:
            payment_books.begin_charge_request(
                session,
                order_id=order_id,
                idempotency_key=idempotency_key,
                amount=amount,
                charge_id=None,
            )
        _end(fence, idempotency_key, ChargeRequestStatus.IN_DOUBT, message=str(mismatch))
        raise mismatch from exc
    return intent.id


def refund(fence: Fence, *, order_id: str, request: ChargeRequest) -> bool:
    """Undo the request's PaymentIntent, retrieved by its id: refund it if it succeeded (True
    when this call refunded it), cancel it if it did not. `ChargeMissing` when Stripe does not
    have it; `ChargeMismatch` when it is not this order's."""
    client = stripe_gateway()
    if client is None:
        raise ProviderNotConfigured(
            f"order {order_id} was charged at Stripe: set FLOWFORGE_PAYMENT_PROVIDER=stripe"
        )
    if request.charge_id is None:  # its creation was refused: the key holds another intent
        raise ChargeMismatch(request.message)
    intent_id = request.charge_id
    intent = outlasting_outage(lambda: client.retrieve(intent_id))
    if intent is None:
        raise ChargeMissing(
            f"Stripe holds no PaymentIntent {intent_id}, although it gave FlowForge that id:"
            " nothing refunded (did the provider lose its records?)"
        )
    if not _belongs(intent, order_id=order_id, amount=request.amount):
        raise ChargeMismatch(_mismatch(intent, request.idempotency_key))
    if not intent.succeeded:
        if intent.status != "canceled":
            try:
                outlasting_outage(
                    lambda: client.cancel(intent_id, idempotency_key=f"{order_id}:cancel")
                )
            except UnexpectedState as exc:
                raise IntentMoved(f"{exc}: retrieving it again") from exc
        _end(fence, request.idempotency_key, ChargeRequestStatus.CANCELED, message=request.message)
        return False
    refunded = not intent.refunded
    if refunded:
        try:
            outlasting_outage(
                lambda: client.refund(intent_id, idempotency_key=f"{order_id}:refund")
            )
        except AlreadyRefunded:
            refunded = False
    with fence() as session:
        payment_books.end_charge_request(  # no longer in doubt: it charged
            session,
            idempotency_key=request.idempotency_key,
            status=ChargeRequestStatus.CHARGED,
            charge_id=intent.id,
            message=request.message,
        )
        _record(session, intent, request.idempotency_key)
        payment_books.mark_refunded(session, charge_id=intent.id)
    return refunded


def _end(fence: Fence, key: str, status: ChargeRequestStatus, *, message: str) -> None:
    with fence() as session:
        payment_books.end_charge_request(
            session, idempotency_key=key, status=status, message=message
        )


def _belongs(intent: Intent, *, order_id: str, amount: int) -> bool:
    return intent.order_id == order_id and intent.amount == amount


def _mismatch(intent: Intent, key: str) -> str:
    state = ", refunded" if intent.refunded else ""
    return (
        f"the PaymentIntent {intent.id} under {key} is for order {intent.order_id}, "
        f"{intent.amount}{state}: not this order's (was the key used before, by a database "
        "since reset?)"
    )


def _record(session: Session, intent: Intent, key: str) -> None:
    payment_books.record_charge(
        session,
        charge_id=intent.id,
        order_id=intent.order_id or "",
        idempotency_key=key,
        amount=intent.amount,
        payment_method=intent.payment_method,
        customer_id=intent.customer_id,
        refunded=intent.refunded,
        created_at=datetime.fromtimestamp(intent.created, UTC),
    )
