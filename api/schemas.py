"""Request and response models of the HTTP API."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import Query
from pydantic import BaseModel, ConfigDict, Field

from storage.limits import MAX_RECEIPT, MAX_UNIT_PRICE
from storage.models import Text
from storage.views import OrderSummary

PAGE_SIZE = 100  # the default `limit` of a paged listing
PageLimit = Annotated[int, Query(ge=1, le=1000, description="at most this many items")]
PageOffset = Annotated[int, Query(ge=0, le=2**31, description="skip this many, newest first")]
MAX_WAIT_SECONDS = 60
StatusWait = Annotated[
    float | None,
    Query(
        gt=0,
        le=MAX_WAIT_SECONDS,
        allow_inf_nan=False,
        description="long poll: answer once the order is terminal or its status changes, or "
        "after this many seconds (then with the status as it stands); absent: at once",
    ),
]


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
    """The order is recorded. `status` is `started` when this request recorded it (an intake
    may already be running it) or a retry found it still pending, else where it stands now (a
    retry of an order that has moved on: `running`, `completed`, ...); `created` is false for
    a retry."""

    workflow_id: str
    order_id: str
    status: str = Field(examples=["started"])
    created: bool
    message: str


class ActionAccepted(BaseModel):
    """A cancel or retry request taken: the order now; `changed` is false when the same
    request was already pending (it is carried out once)."""

    workflow_id: str
    order_id: str
    status: str
    changed: bool
    message: str


class AuditReport(BaseModel):
    clean: bool
    problems: list[str]


class Health(BaseModel):
    status: Literal["ok"]


class RunLink(BaseModel):
    """A Prefect run of the order: its state (None when Prefect did not answer in time) and
    its page in the Prefect UI."""

    id: str
    state: str | None
    state_type: str | None
    url: str | None


class OrderStatusReport(OrderSummary):
    """The order's summary with its events, and the Prefect runs that drove it."""

    flow_run: RunLink | None
    task_run: RunLink | None
