"""Request and response models of the HTTP API."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from storage.cli import MAX_RECEIPT, MAX_UNIT_PRICE

Text = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=128, pattern=r"^[ -~]+$"),
]


class OrderCreate(BaseModel):
    """A new order; `workflow_id` is optional (generated from the order id when absent)."""

    model_config = ConfigDict(extra="forbid")

    product_id: Text = Field(examples=["SKU-001"])
    quantity: int = Field(strict=True, ge=1, le=1_000_000, examples=[2])
    customer_id: Text = Field(examples=["cust-42"])
    payment_method: Text = Field(examples=["tok_visa"])
    workflow_id: str | None = Field(
        default=None, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$", examples=["order-42"]
    )


class StockReceipt(BaseModel):
    """Units received for a product; `name` and `unit_price` describe a new product and, for an
    existing one, must match it."""

    model_config = ConfigDict(extra="forbid")

    quantity: int = Field(strict=True, ge=1, le=MAX_RECEIPT, examples=[40])
    name: Text | None = Field(default=None, examples=["Widget"])
    unit_price: int | None = Field(
        default=None, strict=True, ge=1, le=MAX_UNIT_PRICE, description="cents", examples=[1000]
    )


class OrderStarted(BaseModel):
    """`started`: its fulfill-order run was submitted; `pending`: recorded, the sweep submits it."""

    workflow_id: str
    order_id: str
    status: Literal["started", "pending"]
    flow_run_id: str | None
    message: str


class ActionAccepted(BaseModel):
    """A cancel or retry request taken: the order now, and the run that finishes the job."""

    workflow_id: str
    order_id: str
    status: str
    flow_run_id: str | None
    message: str


class AuditReport(BaseModel):
    clean: bool
    problems: list[str]
