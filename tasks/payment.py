"""Payment: charge the customer once per idempotency key; refund by that key."""

from __future__ import annotations

from storage import operations
from storage.db import session_scope
from tasks.saga_task import saga_task


def payment_key(order_id: str) -> str:
    return f"{order_id}:payment"


@saga_task(name="process_payment", point="payment")
def process_payment(order_id: str, amount: int, payment_method: str, customer_id: str) -> str:
    """Charge `amount` cents; a declined card is refused, never retried. Returns the charge id."""
    with session_scope() as session:
        payment = operations.charge(
            session,
            order_id=order_id,
            idempotency_key=payment_key(order_id),
            amount=amount,
            payment_method=payment_method,
            customer_id=customer_id,
        )
        return payment.charge_id


@saga_task(name="refund_payment", point="refund", compensation=True)
def refund_payment(order_id: str) -> bool:
    """Compensation of process_payment: refund the charge found by idempotency key."""
    with session_scope() as session:
        return operations.refund(session, idempotency_key=payment_key(order_id))
