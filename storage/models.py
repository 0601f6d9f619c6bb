"""SQLModel tables: the saga's source of truth."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, StringConstraints, field_validator, model_validator
from pydantic import Field as Check
from sqlalchemy import JSON, Column, Dialect, TypeDecorator, UniqueConstraint
from sqlmodel import Field, SQLModel

from storage.vocabulary import (
    ACTIVE_STATUSES,
    ORDER_STATUSES,
    SETTLED_STATUSES,
    TERMINAL_STATUSES,
    ChargeRequestStatus,
    ChargeStatus,
    CompensationStatus,
    EventStatus,
    OrderStatus,
    PaymentProvider,
    ReservationStatus,
    StepKind,
    StepStatus,
    WarehouseStatus,
)

__all__ = [
    "ACTIVE_STATUSES",
    "ORDER_STATUSES",
    "SETTLED_STATUSES",
    "TERMINAL_STATUSES",
    "ChargeRequestStatus",
    "ChargeStatus",
    "CompensationStatus",
    "EventStatus",
    "OrderStatus",
    "PaymentProvider",
    "ReservationStatus",
    "StepKind",
    "StepStatus",
    "WarehouseStatus",
]


def utcnow() -> datetime:
    return datetime.now(UTC)


class Product(SQLModel, table=True):
    __tablename__ = "products"

    product_id: str = Field(primary_key=True)
    name: str
    unit_price: int = Field(description="cents per unit")
    available: int
    reserved: int = 0
    total_received: int


class Reservation(SQLModel, table=True):
    """The units of one line of an order held for it."""

    __tablename__ = "reservations"
    __table_args__ = (UniqueConstraint("order_id", "product_id", name="uq_reservations_line"),)

    id: int | None = Field(default=None, primary_key=True)
    order_id: str = Field(index=True)
    product_id: str = Field(foreign_key="products.product_id")
    quantity: int
    status: str = ReservationStatus.HELD  # ReservationStatus
    created_at: datetime = Field(default_factory=utcnow)
    released_at: datetime | None = None


class Payment(SQLModel, table=True):
    __tablename__ = "payments"

    charge_id: str = Field(primary_key=True)
    order_id: str = Field(index=True)
    idempotency_key: str = Field(unique=True, index=True)
    amount: int
    payment_method: str
    customer_id: str
    status: str = ChargeStatus.CHARGED  # ChargeStatus
    provider: str = PaymentProvider.EMBEDDED  # PaymentProvider
    created_at: datetime = Field(default_factory=utcnow)
    refunded_at: datetime | None = None


class ChargeRequest(SQLModel, table=True):
    """A charge asked of Stripe (its PaymentIntent's id), written before the confirmation
    leaves: whether it may have reached Stripe decides what a refund must find out."""

    __tablename__ = "charge_requests"

    idempotency_key: str = Field(primary_key=True)
    order_id: str = Field(index=True)
    amount: int
    status: str = ChargeRequestStatus.SENDING  # ChargeRequestStatus
    attempts: int = 0
    charge_id: str | None = None  # the provider's, once it answered
    message: str = ""  # the last attempt's error
    attempted_at: datetime = Field(default_factory=utcnow)  # when the last attempt left
    # when the last attempt that may have reached the provider left (None: none may have)
    reached_at: datetime | None = None


class WarehouseRecord(SQLModel, table=True):
    """One line of an order's shipment (the shipment is the order's records)."""

    __tablename__ = "warehouse_records"
    __table_args__ = (UniqueConstraint("order_id", "product_id", name="uq_warehouse_records_line"),)

    id: int | None = Field(default=None, primary_key=True)
    order_id: str = Field(index=True)
    product_id: str
    quantity: int
    status: str = WarehouseStatus.APPLIED  # WarehouseStatus
    created_at: datetime = Field(default_factory=utcnow)
    reverted_at: datetime | None = None


ORDER_ID = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$"  # order and workflow ids
MAX_QUANTITY = 1_000_000  # units of one line
MAX_LINES = 100  # lines of one order
Text = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=128, pattern=r"^[ -~]+$"),
]
SINGLE_PRODUCT = ("product_id", "quantity")  # the seed's shape of an order: one line
Quantity = Annotated[int, Check(strict=True, ge=1, le=MAX_QUANTITY, examples=[2])]


class OrderLine(BaseModel):
    """One line of an order: a product and its units (each product at most once per order)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    product_id: Text = Check(examples=["SKU-001"])
    quantity: Quantity


def _lines_or_one_product(schema: dict[str, Any]) -> None:
    """The JSON schema: `lines` is required unless `product_id` and `quantity` are given."""
    schema["required"] = [field for field in schema["required"] if field != "lines"]
    schema["oneOf"] = [{"required": ["lines"]}, {"required": list(SINGLE_PRODUCT)}]


class OrderCreate(BaseModel):
    """A new order: its `lines`, or the single-product shape `product_id` + `quantity` (read
    as one line). `order_id` and `workflow_id` are optional (generated when absent)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=_lines_or_one_product)

    lines: list[OrderLine] = Check(
        min_length=1,
        max_length=MAX_LINES,
        description=f"1 to {MAX_LINES} lines, each product at most once",
    )
    product_id: Text | None = Check(
        default=None, description="without `lines`: the one line's product", examples=["SKU-001"]
    )
    quantity: Quantity | None = Check(default=None, description="without `lines`: its units")
    customer_id: Text = Check(examples=["cust-42"])
    payment_method: Text = Check(examples=["tok_visa"])
    order_id: str | None = Check(default=None, pattern=ORDER_ID, examples=["ord_42"])
    workflow_id: str | None = Check(default=None, pattern=ORDER_ID, examples=["order-42"])

    @model_validator(mode="before")
    @classmethod
    def _single_product_is_one_line(cls, data: Any) -> Any:
        """`product_id` + `quantity` without `lines` is a one-line order; both shapes at once
        are refused."""
        if not isinstance(data, dict):
            return data
        single = {field: data[field] for field in SINGLE_PRODUCT if field in data}
        if "lines" in data:
            if single:
                raise ValueError("give either lines or product_id and quantity, not both")
            return data
        line = OrderLine.model_validate(single)  # a missing or bad field is named as such
        return {**{k: v for k, v in data.items() if k not in single}, "lines": [line]}

    @field_validator("lines")
    @classmethod
    def _each_product_once(cls, lines: list[OrderLine]) -> list[OrderLine]:
        first: dict[str, int] = {}
        for number, line in enumerate(lines, start=1):
            if line.product_id in first:
                raise ValueError(
                    f"line {number}: product_id {line.product_id!r} is already line "
                    f"{first[line.product_id]} (each product at most once per order)"
                )
            first[line.product_id] = number
        return lines


class Lines(TypeDecorator):
    """An order's lines in one JSON column: `[{"product_id", "quantity"}, ...]`."""

    impl = JSON
    cache_ok = True

    def process_bind_param(
        self, value: Sequence[OrderLine] | None, dialect: Dialect
    ) -> list[dict[str, Any]] | None:
        return None if value is None else [line.model_dump() for line in value]

    def process_result_value(
        self, value: list[dict[str, Any]] | None, dialect: Dialect
    ) -> tuple[OrderLine, ...] | None:
        """Lines read back were validated when recorded: built without validating again."""
        return None if value is None else tuple(OrderLine.model_construct(**v) for v in value)


class Order(SQLModel, table=True):
    """An order (`OrderCreate` is what a client sends; `views.OrderSummary` what it reads)."""

    __tablename__ = "orders"

    lines: tuple[OrderLine, ...] = Field(sa_column=Column(Lines, nullable=False))
    product_id: str  # the first line's product
    quantity: int  # the units of every line
    customer_id: str
    payment_method: str
    order_id: str = Field(primary_key=True)
    workflow_id: str = Field(unique=True, index=True)
    amount: int = 0
    status: str = Field(default=OrderStatus.PENDING, index=True)  # OrderStatus
    current_step: str | None = None
    failure_reason: str | None = None
    failure_point: str | None = None
    cancel_requested: bool = False
    flow_run_id: str | None = None
    task_run_id: str | None = None  # the intake's `fulfill-order` task run of this order
    lease_owner: str | None = None
    lease_expires_at: datetime | None = None
    created_at: datetime = Field(default_factory=utcnow, index=True)
    updated_at: datetime = Field(default_factory=utcnow)
    finished_at: datetime | None = None


class SagaStep(SQLModel, table=True):
    """One row per step and per compensation of an order: the durable rollback stack."""

    __tablename__ = "saga_steps"
    __table_args__ = (UniqueConstraint("order_id", "name"),)

    id: int | None = Field(default=None, primary_key=True)
    order_id: str = Field(index=True)
    name: str
    kind: str  # StepKind
    position: int
    status: str  # StepStatus for a step, CompensationStatus for a compensation
    attempts: int = 0
    idempotency_key: str | None = None
    error: str | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None


class SagaEvent(SQLModel, table=True):
    __tablename__ = "saga_events"

    id: int | None = Field(default=None, primary_key=True)
    order_id: str = Field(index=True)
    step: str
    status: str  # EventStatus
    attempt: int
    message: str = ""
    timestamp: datetime = Field(default_factory=utcnow)
