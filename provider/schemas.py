"""The parameters of each request the provider serves, as Stripe names them; unknown ones are
refused as Stripe refuses them."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

MAX_AMOUNT = 99_999_999  # Stripe's largest amount: $999,999.99 in cents
Amount = Annotated[int, Field(gt=0, le=MAX_AMOUNT)]
Metadata = Annotated[dict[str, str], Field(max_length=50)]


class Params(BaseModel):
    """A request's parameters (every endpoint takes `expand`)."""

    model_config = ConfigDict(extra="forbid")

    expand: list[str] = Field(default_factory=list)


class CardParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    token: str = Field(min_length=1)


class PaymentMethodCreate(Params):
    """`POST /v1/payment_methods`: a card PaymentMethod from a token (`card[token]=tok_visa`)."""

    type: Literal["card"]
    card: CardParams
    metadata: Metadata = Field(default_factory=dict)


class IntentCreate(Params):
    """`POST /v1/payment_intents`."""

    amount: Amount
    currency: str = Field(pattern=r"^[A-Za-z]{3}$")
    payment_method: str | None = Field(None, min_length=1)
    payment_method_types: list[Literal["card"]] = Field(default_factory=lambda: ["card"])
    confirm: bool = False
    description: str | None = None
    metadata: Metadata = Field(default_factory=dict)

    @field_validator("currency")
    @classmethod
    def _lower(cls, value: str) -> str:
        return value.lower()


class IntentConfirm(Params):
    """`POST /v1/payment_intents/{id}/confirm`."""

    payment_method: str | None = Field(None, min_length=1)


class IntentCancel(Params):
    """`POST /v1/payment_intents/{id}/cancel`."""

    cancellation_reason: (
        Literal["duplicate", "fraudulent", "requested_by_customer", "abandoned"] | None
    ) = None


class RefundCreate(Params):
    """`POST /v1/refunds`: of a PaymentIntent or of a charge; full refunds only."""

    payment_intent: str | None = None
    charge: str | None = None
    amount: Amount | None = None
    reason: Literal["duplicate", "fraudulent", "requested_by_customer"] | None = None
    metadata: Metadata = Field(default_factory=dict)


class Retrieve(Params):
    """`GET` of one object."""


class ListParams(Params):
    """`GET` of a list: newest first, `limit` at a time, after the object `starting_after`."""

    limit: int = Field(10, ge=1, le=100)
    starting_after: str | None = None


class RefundList(ListParams):
    payment_intent: str | None = None
    charge: str | None = None
