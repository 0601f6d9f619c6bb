"""The side effects of the saga. Each is one atomic, idempotent operation keyed by the order:
running it twice leaves the state as the first run left it, and every undo is a no-op when
there is nothing to undo."""

from __future__ import annotations

import secrets

from sqlalchemy import update
from sqlmodel import Session, col, select

from storage.db import insert_once
from storage.errors import CardDeclined, InsufficientStock, ProductMismatch, UnknownProduct
from storage.models import (
    ChargeStatus,
    Payment,
    PaymentProvider,
    Product,
    Reservation,
    ReservationStatus,
    WarehouseRecord,
    WarehouseStatus,
    utcnow,
)

DECLINED_PAYMENT_PREFIX = "tok_declined"
DEFAULT_UNIT_PRICE = 1000  # cents


def check_stock(session: Session, *, product_id: str, quantity: int) -> Product:
    """Refuse an unknown product or a quantity above what is available now."""
    product = session.get(Product, product_id)
    if product is None:
        raise UnknownProduct(product_id)
    if product.available < quantity:
        raise InsufficientStock(product_id, quantity, product.available)
    return product


def unit_price(session: Session, *, product_id: str) -> int:
    product = session.get(Product, product_id)
    if product is None:
        raise UnknownProduct(product_id)
    return product.unit_price


def receive_stock(
    session: Session,
    *,
    product_id: str,
    quantity: int,
    name: str | None = None,
    unit_price: int | None = None,
) -> Product:
    """Add received units to a product, creating it (with `name` and `unit_price`) if it is
    new; an existing product whose name or unit price differs from those given is refused."""
    product = session.get(Product, product_id)
    if product is None:
        product = Product(
            product_id=product_id,
            name=name or product_id,
            unit_price=DEFAULT_UNIT_PRICE if unit_price is None else unit_price,
            available=0,
            total_received=0,
        )
        if not insert_once(session, product):
            product = session.get(Product, product_id)
    for field, given in (("name", name), ("unit_price", unit_price)):
        current = getattr(product, field)
        if given is not None and given != current:
            raise ProductMismatch(product_id, field, current, given)
    session.execute(
        update(Product)
        .where(col(Product.product_id) == product_id)
        .values(
            available=Product.available + quantity,
            total_received=Product.total_received + quantity,
        )
    )
    session.refresh(product)
    return product


def reserve_stock(
    session: Session, *, order_id: str, product_id: str, quantity: int
) -> Reservation:
    """Hold `quantity` units for the order: a guarded UPDATE, the row count decides."""
    existing = session.exec(select(Reservation).where(Reservation.order_id == order_id)).first()
    if existing is not None:
        return existing
    result = session.execute(
        update(Product)
        .where(col(Product.product_id) == product_id, col(Product.available) >= quantity)
        .values(available=Product.available - quantity, reserved=Product.reserved + quantity)
    )
    if result.rowcount != 1:
        check_stock(session, product_id=product_id, quantity=quantity)
        raise InsufficientStock(product_id, quantity, 0)
    reservation = Reservation(order_id=order_id, product_id=product_id, quantity=quantity)
    session.add(reservation)
    session.flush()
    return reservation


def release_stock(session: Session, *, order_id: str) -> bool:
    """Return a held reservation's units to stock. False when nothing was held."""
    reservation = session.exec(
        select(Reservation).where(
            Reservation.order_id == order_id, Reservation.status == ReservationStatus.HELD
        )
    ).first()
    if reservation is None:
        return False
    released = session.execute(
        update(Reservation)
        .where(
            col(Reservation.id) == reservation.id,
            col(Reservation.status) == ReservationStatus.HELD,
        )
        .values(status=ReservationStatus.RELEASED, released_at=utcnow())
    )
    if released.rowcount != 1:
        return False
    session.execute(
        update(Product)
        .where(col(Product.product_id) == reservation.product_id)
        .values(
            available=Product.available + reservation.quantity,
            reserved=Product.reserved - reservation.quantity,
        )
    )
    return True


def charge(
    session: Session,
    *,
    order_id: str,
    idempotency_key: str,
    amount: int,
    payment_method: str,
    customer_id: str,
) -> Payment:
    """Charge once per idempotency key; a repeat returns the first charge."""
    existing = session.exec(
        select(Payment).where(Payment.idempotency_key == idempotency_key)
    ).first()
    if existing is not None:
        return existing
    if payment_method.startswith(DECLINED_PAYMENT_PREFIX):
        raise CardDeclined(payment_method)
    payment = Payment(
        charge_id=f"ch_{secrets.token_hex(12)}",
        order_id=order_id,
        idempotency_key=idempotency_key,
        amount=amount,
        payment_method=payment_method,
        customer_id=customer_id,
    )
    session.add(payment)
    session.flush()
    return payment


def refund(session: Session, *, idempotency_key: str) -> bool:
    """Refund the embedded charge made under `idempotency_key`. False when there is none to
    refund (a charge at an HTTP provider is refunded there: tasks/payment_http.py)."""
    result = session.execute(
        update(Payment)
        .where(
            col(Payment.idempotency_key) == idempotency_key,
            col(Payment.status) == ChargeStatus.CHARGED,
            col(Payment.provider) == PaymentProvider.EMBEDDED,
        )
        .values(status=ChargeStatus.REFUNDED, refunded_at=utcnow())
    )
    return result.rowcount == 1


def apply_warehouse(
    session: Session, *, order_id: str, product_id: str, quantity: int
) -> WarehouseRecord:
    """Write the order's warehouse record once."""
    existing = session.exec(
        select(WarehouseRecord).where(WarehouseRecord.order_id == order_id)
    ).first()
    if existing is not None:
        return existing
    record = WarehouseRecord(order_id=order_id, product_id=product_id, quantity=quantity)
    session.add(record)
    session.flush()
    return record


def revert_warehouse(session: Session, *, order_id: str) -> bool:
    """Mark the order's warehouse record reverted. False when none is applied."""
    result = session.execute(
        update(WarehouseRecord)
        .where(
            col(WarehouseRecord.order_id) == order_id,
            col(WarehouseRecord.status) == WarehouseStatus.APPLIED,
        )
        .values(status=WarehouseStatus.REVERTED, reverted_at=utcnow())
    )
    return result.rowcount == 1
