"""Request bodies of the provider's API and their fingerprints (for idempotency checks)."""

from __future__ import annotations

import hashlib
import json

from pydantic import BaseModel, ConfigDict, Field, field_validator

MAX_AMOUNT = 2**63 - 1  # SQLite's largest INTEGER: a larger amount cannot be stored


class Params(BaseModel):
    """A request body; unknown fields are refused."""

    model_config = ConfigDict(extra="forbid")

    def fingerprint(self) -> str:
        """The SHA-256 of the canonical (validated, defaults filled in) body."""
        canonical = json.dumps(self.model_dump(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()


class ChargeParams(Params):
    """`POST /v1/charges`."""

    amount: int = Field(gt=0, le=MAX_AMOUNT, strict=True)
    currency: str = Field("usd", pattern=r"^[A-Za-z]{3}$")
    payment_method: str = Field(min_length=1)
    customer: str | None = None
    metadata: dict[str, str] | None = Field(None, validate_default=True)

    @field_validator("currency")
    @classmethod
    def _lower(cls, value: str) -> str:
        return value.lower()

    @field_validator("metadata")
    @classmethod
    def _empty(cls, value: dict[str, str] | None) -> dict[str, str]:
        return value or {}


class RefundParams(Params):
    """`POST /v1/refunds`: full refunds only (`amount`, if given, must be the charge's)."""

    charge: str = Field(min_length=1)
    amount: int | None = Field(None, gt=0, le=MAX_AMOUNT, strict=True)
