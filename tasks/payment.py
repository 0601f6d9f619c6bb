"""Payment: charge the customer once per idempotency key; refund by that key. The charge is a
row in FlowForge's database (the embedded provider), or, with `FLOWFORGE_PAYMENT_PROVIDER=stripe`,
a PaymentIntent at Stripe (tasks/payment_http.py).

Both functions here wait on another system (`waits=True`): written `fn(fence, order_id, ...)`,
they run outside the attempt's transaction and open their own. A request the provider refuses
(a 4xx that is not a decline) is final. `@saga_task` makes each a task called as
`task(order_id, lease_owner, ...)` (see tasks/saga_task.py)."""

from __future__ import annotations

from sqlmodel import Session

from payments.client import stripe_gateway
from storage import operations, payment_books, saga_log
from storage.models import OrderLine
from tasks import payment_http
from tasks.saga_task import Fence, saga_task


def payment_key(order_id: str) -> str:
    """The idempotency key of the order's charge (and of its refund)."""
    return f"{order_id}:payment"


@saga_task(name="process_payment", waits=True)
def process_payment(
    fence: Fence,
    order_id: str,
    lines: list[OrderLine],
    payment_method: str,
    customer_id: str,
) -> str:
    """Charge the cart's total (quantity × unit price over the lines) once; a declined card is
    refused, never retried. Returns the charge id."""

    def amount(session: Session) -> int:
        return operations.cart_total(session, lines=lines)

    client = stripe_gateway()
    if client is not None:
        with payment_http.rejections_final():
            return payment_http.charge(
                client,
                fence,
                order_id=order_id,
                idempotency_key=payment_key(order_id),
                amount_of=amount,
                payment_method=payment_method,
                customer_id=customer_id,
            )
    with fence() as session:
        if payment_books.charge_request(session, idempotency_key=payment_key(order_id)):
            raise payment_http.ProviderNotConfigured(
                f"order {order_id} was sent to Stripe: set FLOWFORGE_PAYMENT_PROVIDER=stripe"
            )
        payment = operations.charge(
            session,
            order_id=order_id,
            idempotency_key=payment_key(order_id),
            amount=amount(session),
            payment_method=payment_method,
            customer_id=customer_id,
        )
        saga_log.update_order(session, order_id=order_id, amount=payment.amount)
        return payment.charge_id


@saga_task(name="refund_payment", compensation=True, waits=True)
def refund_payment(fence: Fence, order_id: str) -> bool:
    """Compensation of process_payment: refund the charge found by idempotency key, here or at
    Stripe, where the charge request went."""
    key = payment_key(order_id)
    with fence() as session:
        if operations.refund(session, idempotency_key=key):
            return True
        request = payment_books.charge_request(session, idempotency_key=key)
    if request is None or request.status not in payment_books.MAY_HAVE_CHARGED:
        return False
    with payment_http.rejections_final():
        return payment_http.refund(fence, order_id=order_id, request=request)
