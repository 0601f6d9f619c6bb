"""Domain errors. A `FinalError` is never retried: a step or compensation that raises one
ends at once. A `DomainRefusal` is a final error meaning the step refused and changed
nothing (its compensation is skipped)."""


class FinalError(Exception):
    """Retrying cannot help: the step or compensation that raised it ends at once. An
    integration says "never retry this" by raising a subclass."""


class DomainRefusal(FinalError):
    """The business said no; retrying cannot help."""


def _on_line(line: int | None) -> str:
    """How a refusal names the line of a cart (a one-line order needs no number)."""
    return "" if line is None else f"line {line}: "


class UnknownProduct(DomainRefusal):
    def __init__(self, product_id: str, line: int | None = None) -> None:
        super().__init__(f"{_on_line(line)}unknown product {product_id!r}")


class InsufficientStock(DomainRefusal):
    def __init__(
        self, product_id: str, requested: int, available: int, line: int | None = None
    ) -> None:
        super().__init__(
            f"{_on_line(line)}insufficient stock for {product_id}: requested {requested}, "
            f"available {available}"
        )


class CardDeclined(DomainRefusal):
    def __init__(self, payment_method: str) -> None:
        super().__init__(f"card declined for payment method {payment_method!r}")


class ProductMismatch(ValueError):
    """A receipt described an existing product differently: refused, nothing received."""

    def __init__(self, product_id: str, field: str, current: object, given: object) -> None:
        super().__init__(
            f"product {product_id!r} has {field} {current!r}, not {given!r}: "
            "name and unit price only describe a new product"
        )


class OrderConflict(ValueError):
    """A new order that clashes with a recorded one: refused, nothing recorded."""


class IdConflict(OrderConflict):
    def __init__(self, requested: str, owner: str) -> None:
        super().__init__(f"id {requested!r} is already used by order {owner!r}")


class OrderDiffers(OrderConflict):
    """The order id is recorded already, with other details: not a retry of that order."""

    def __init__(self, order_id: str, differences: dict[str, tuple[object, object]]) -> None:
        details = ", ".join(
            f"{field} {recorded!r}, not {given!r}"
            for field, (recorded, given) in differences.items()
        )
        super().__init__(f"order {order_id!r} exists already with other details: {details}")


class OrderNotFound(LookupError):
    def __init__(self, order_id: str) -> None:
        super().__init__(f"order {order_id!r} not found")


class LeaseLost(FinalError):
    """Another process holds the order's lease now: this one must not touch the order."""

    def __init__(self, order_id: str) -> None:
        super().__init__(f"lost the lease on order {order_id!r} to another process")


class StorageUnavailable(RuntimeError):
    """The configured database cannot be used (bad URL, unreachable, newer schema)."""
