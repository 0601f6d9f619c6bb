"""Payment: charge the customer once per idempotency key; refund by that key.

Each function here is written `fn(session, order_id, ...)`; `@saga_task` makes it
a task called as `task(order_id, lease_owner, ...)` (see tasks/saga_task.py)."""

from __future__ import annotations

from sqlmodel import Session

from storage import operations, saga_log
from tasks.saga_task import saga_task


def payment_key(order_id: str) -> str:
    """The idempotency key of the order's charge (and of its refund)."""
    return f"{order_id}:payment"


@saga_task(name="process_payment", point="payment")
def process_payment(
    session: Session,
    order_id: str,
    product_id: str,
    quantity: int,
    payment_method: str,
    customer_id: str,
) -> str:
    """Charge quantity × unit price; a declined card is refused, never retried. Returns the
    charge id."""
    payment = operations.charge(
        session,
        order_id=order_id,
        idempotency_key=payment_key(order_id),
        amount=quantity * operations.unit_price(session, product_id=product_id),
        payment_method=payment_method,
        customer_id=customer_id,
    )
    saga_log.update_order(session, order_id=order_id, amount=payment.amount)
    return payment.charge_id


@saga_task(name="refund_payment", point="refund", compensation=True)
def refund_payment(session: Session, order_id: str) -> bool:
    """Compensation of process_payment: refund the charge found by idempotency key."""
    return operations.refund(session, idempotency_key=payment_key(order_id))
