"""The side effects of the saga. Each is one atomic, idempotent operation keyed by the order:
running it twice leaves the state as the first run left it, and every undo is a no-op when
there is nothing to undo."""

from __future__ import annotations

import secrets
from collections.abc import Sequence

from sqlalchemy import update
from sqlmodel import Session, col, select

from storage.db import insert_once
from storage.errors import CardDeclined, InsufficientStock, ProductMismatch, UnknownProduct
from storage.models import (
    ChargeStatus,
    OrderLine,
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


def numbered(lines: Sequence[OrderLine]) -> list[tuple[int | None, OrderLine]]:
    """Each line with the number a refusal names it by (None for a one-line order)."""
    if len(lines) == 1:
        return [(None, lines[0])]
    return list(enumerate(lines, start=1))


def products_of(session: Session, *, lines: Sequence[OrderLine]) -> dict[str, Product]:
    """The lines' products that exist, by id (by primary key: a product already read in this
    session costs no query)."""
    found = {line.product_id: session.get(Product, line.product_id) for line in lines}
    return {product_id: product for product_id, product in found.items() if product}


def check_stock(session: Session, *, lines: Sequence[OrderLine]) -> int:
    """Refuse, naming the first line that cannot be served, an unknown product or a quantity
    above what is available now; returns the units available for the whole cart."""
    products = products_of(session, lines=lines)
    for number, line in numbered(lines):
        product = products.get(line.product_id)
        if product is None:
            raise UnknownProduct(line.product_id, number)
        if product.available < line.quantity:
            raise InsufficientStock(line.product_id, line.quantity, product.available, number)
    return sum(products[line.product_id].available for line in lines)


def cart_total(session: Session, *, lines: Sequence[OrderLine]) -> int:
    """The sum of quantity × unit price over the lines, in cents; `UnknownProduct` names the
    first line whose product is unknown."""
    products = products_of(session, lines=lines)
    for number, line in numbered(lines):
        if line.product_id not in products:
            raise UnknownProduct(line.product_id, number)
    return priced(products, lines)


def priced(products: dict[str, Product], lines: Sequence[OrderLine]) -> int:
    """Σ quantity × unit price over the lines whose product is in `products`, in cents."""
    return sum(
        line.quantity * products[line.product_id].unit_price
        for line in lines
        if line.product_id in products
    )


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
    session: Session, *, order_id: str, lines: Sequence[OrderLine]
) -> list[Reservation]:
    """Hold every line's units for the order, or none (a savepoint): products are taken in
    id order, so two overlapping carts never wait on each other in a cycle."""
    existing = session.exec(select(Reservation).where(Reservation.order_id == order_id)).all()
    if existing:
        return list(existing)
    if len(lines) == 1:  # one guarded UPDATE: it holds the line or changes nothing
        _hold(session, lines[0], lines)
    else:
        with session.begin_nested():  # a line that cannot be served undoes the lines held
            for line in sorted(lines, key=lambda line: line.product_id):
                _hold(session, line, lines)
    reservations = [
        Reservation(order_id=order_id, product_id=line.product_id, quantity=line.quantity)
        for line in lines
    ]
    session.add_all(reservations)
    session.flush()
    return reservations


def _hold(session: Session, line: OrderLine, lines: Sequence[OrderLine]) -> None:
    """Move one line's units from available to reserved: a guarded UPDATE, the row count
    decides; a line that cannot be served is refused naming it."""
    result = session.execute(
        update(Product)
        .where(col(Product.product_id) == line.product_id, col(Product.available) >= line.quantity)
        .values(
            available=Product.available - line.quantity,
            reserved=Product.reserved + line.quantity,
        )
    )
    if result.rowcount != 1:
        check_stock(session, lines=lines)
        raise InsufficientStock(line.product_id, line.quantity, 0)


def release_stock(session: Session, *, order_id: str) -> bool:
    """Return every held line of the order's reservation to stock, products in id order.
    False when nothing was held."""
    held = session.exec(
        select(Reservation)
        .where(Reservation.order_id == order_id, Reservation.status == ReservationStatus.HELD)
        .order_by(col(Reservation.product_id))
    ).all()
    released = False
    for reservation in held:
        result = session.execute(
            update(Reservation)
            .where(
                col(Reservation.id) == reservation.id,
                col(Reservation.status) == ReservationStatus.HELD,
            )
            .values(status=ReservationStatus.RELEASED, released_at=utcnow())
        )
        if result.rowcount != 1:
            continue
        session.execute(
            update(Product)
            .where(col(Product.product_id) == reservation.product_id)
            .values(
                available=Product.available + reservation.quantity,
                reserved=Product.reserved - reservation.quantity,
            )
        )
        released = True
    return released


def embedded_charge(session: Session, *, idempotency_key: str) -> Payment | None:
    """The charge the embedded provider made under `idempotency_key`, if any (a process set to
    charge at Stripe must not charge an order again that one set otherwise already charged)."""
    return session.exec(
        select(Payment).where(
            Payment.idempotency_key == idempotency_key,
            Payment.provider == PaymentProvider.EMBEDDED,
        )
    ).first()


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
    refund (a charge at Stripe is refunded there: tasks/payment_http.py)."""
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
    session: Session, *, order_id: str, lines: Sequence[OrderLine]
) -> list[WarehouseRecord]:
    """Write the order's shipment, a record per line, once."""
    existing = session.exec(
        select(WarehouseRecord).where(WarehouseRecord.order_id == order_id)
    ).all()
    if existing:
        return list(existing)
    records = [
        WarehouseRecord(order_id=order_id, product_id=line.product_id, quantity=line.quantity)
        for line in lines
    ]
    session.add_all(records)
    session.flush()
    return records


def revert_warehouse(session: Session, *, order_id: str) -> bool:
    """Mark the order's shipment reverted. False when none is applied."""
    result = session.execute(
        update(WarehouseRecord)
        .where(
            col(WarehouseRecord.order_id) == order_id,
            col(WarehouseRecord.status) == WarehouseStatus.APPLIED,
        )
        .values(status=WarehouseStatus.REVERTED, reverted_at=utcnow())
    )
    return result.rowcount > 0
