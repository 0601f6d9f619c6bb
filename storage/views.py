"""The read models: an order's summary and the engine's records as the CLIs' `--json`, the API
and the dashboard report them. Each is validated from its table row (`from_attributes`) and
written out with `model_dump(mode="json")`; times are ISO strings, as `datetime.isoformat()`
writes them."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from storage.models import OrderLine
from storage.vocabulary import (
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


def cart_text(lines: Iterable[OrderLine]) -> str:
    """An order's lines in one phrase: `2 x SKU-001, 1 x SKU-003`."""
    return ", ".join(f"{line.quantity} x {line.product_id}" for line in lines)


def iso(value: Any) -> Any:
    """A row's time as the views carry it: `datetime.isoformat()` (anything else passes)."""
    return value.isoformat() if isinstance(value, datetime) else value


IsoTime = Annotated[str, BeforeValidator(iso)]


class View(BaseModel):
    """A read model, validated from a row's attributes."""

    model_config = ConfigDict(from_attributes=True)


class SagaEventView(View):
    """One attempt transition: the timeline."""

    step: str
    status: EventStatus
    attempt: int
    message: str
    timestamp: IsoTime


class SagaStepView(View):
    """One step or compensation of the saga log."""

    name: str
    kind: StepKind
    status: StepStatus | CompensationStatus
    attempts: int
    error: str | None
    started_at: IsoTime | None
    finished_at: IsoTime | None


def _absent(value: Any) -> bool:
    return value is None


class OrderSummary(View):
    """An order as the CLI's `--json` and the API report it. `product_id` and `quantity` are
    the single-product shape's fields: the first line's product and the units of every line.
    `events` is left out of the JSON when it was not read (listings and the snapshot)."""

    order_id: str
    workflow_id: str
    status: OrderStatus
    lines: list[OrderLine]
    product_id: str
    quantity: int
    customer_id: str
    amount: int
    current_step: str | None
    steps_completed: list[str]
    compensations: list[str]  # in the order they ran
    compensation_triggered: bool
    failure_reason: str | None
    failure_point: str | None
    cancel_requested: bool
    flow_run_id: str | None
    task_run_id: str | None
    created_at: IsoTime
    finished_at: IsoTime | None
    saga: list[SagaStepView]
    events: list[SagaEventView] | None = Field(default=None, exclude_if=_absent)


class InventoryView(View):
    """A product's stock."""

    product_id: str
    name: str
    unit_price: int = Field(description="cents per unit")
    available: int
    reserved: int
    total_received: int


class PaymentView(View):
    """A charge: a row of the embedded provider, or a PaymentIntent at Stripe (`charge_id` is
    then its `pi_…` id, `status` its state as last learnt)."""

    charge_id: str
    order_id: str
    amount: int
    payment_method: str
    idempotency_key: str
    status: ChargeStatus
    provider: PaymentProvider
    created_at: IsoTime
    refunded_at: IsoTime | None


class ChargeRequestView(View):
    """A charge asked of Stripe and what is known of it (the dashboard's order records)."""

    idempotency_key: str
    status: ChargeRequestStatus
    attempts: int
    charge_id: str | None
    message: str
    attempted_at: IsoTime
    reached_at: IsoTime | None


class WarehouseView(View):
    """One line of an order's shipment."""

    order_id: str
    product_id: str
    quantity: int
    status: WarehouseStatus
    created_at: IsoTime


class WarehouseDetail(WarehouseView):
    """A warehouse record with when it was reverted (the dashboard's order records)."""

    reverted_at: IsoTime | None


class ReservationView(View):
    """The stock held for one line of an order (the dashboard's order records)."""

    product_id: str
    quantity: int
    status: ReservationStatus
    created_at: IsoTime
    released_at: IsoTime | None


class EngineSnapshot(BaseModel):
    """Orders (without their events), inventory, payments and warehouse records."""

    orders: list[OrderSummary]
    inventory: list[InventoryView]
    payments: list[PaymentView]
    warehouse: list[WarehouseView]
