"""FlowForge settings: every knob is an environment variable with a default."""

from __future__ import annotations

import os
import sys
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

DEFAULT_DB_PATH = ".flowforge/flowforge.sqlite3"
# the settings of the payment provider before it spoke Stripe's API
RETIRED_VARIABLES = frozenset({"FLOWFORGE_PAYMENT_URL", "FLOWFORGE_PAYMENT_API_KEY"})
# a delay between attempts: finite, at most an hour
Seconds = Annotated[float, Field(ge=0, le=3600, allow_inf_nan=False)]


class Settings(BaseSettings):
    """Read once per process from the environment."""

    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True)

    database_url: str = Field(default="", validation_alias="DATABASE_URL")
    db_path: str = Field(default=DEFAULT_DB_PATH, validation_alias="FLOWFORGE_DB_PATH")
    # PostgreSQL connections per process: see docs/scale-out.md for sizing.
    db_pool_size: int = Field(default=10, ge=1, le=500, validation_alias="FLOWFORGE_DB_POOL_SIZE")
    db_max_overflow: int = Field(
        default=5, ge=0, le=500, validation_alias="FLOWFORGE_DB_MAX_OVERFLOW"
    )
    step_retries: int = Field(default=3, ge=0, le=100, validation_alias="FLOWFORGE_STEP_RETRIES")
    compensation_retries: int = Field(
        default=3, ge=0, le=100, validation_alias="FLOWFORGE_COMPENSATION_RETRIES"
    )
    retry_delays: Annotated[list[Seconds], NoDecode] = Field(
        default=[0.5, 1.0, 2.0],
        validation_alias="FLOWFORGE_RETRY_DELAYS",
    )
    lease_seconds: float = Field(
        default=10.0, gt=0, le=3600, allow_inf_nan=False, validation_alias="FLOWFORGE_LEASE_SECONDS"
    )
    # The service (api/, deployments/): see docs/service.md.
    prefect_home: str = Field(
        default=".flowforge/prefect", validation_alias="FLOWFORGE_PREFECT_HOME"
    )
    api_token: str = Field(default="", validation_alias="FLOWFORGE_API_TOKEN")
    metrics_token: str = Field(default="", validation_alias="FLOWFORGE_METRICS_TOKEN")
    api_host: str = Field(default="127.0.0.1", validation_alias="FLOWFORGE_API_HOST")
    api_port: int = Field(default=8000, ge=1, le=65535, validation_alias="FLOWFORGE_API_PORT")
    runner_limit: int = Field(default=4, ge=1, le=256, validation_alias="FLOWFORGE_RUNNER_LIMIT")
    runner_poll_seconds: float = Field(
        default=1.0, ge=0.1, le=60, validation_alias="FLOWFORGE_RUNNER_POLL_SECONDS"
    )
    # The intake (flows/intake.py) and the batch (flows/batch.py).
    intake_concurrency: int = Field(
        default=8, ge=1, le=256, validation_alias="FLOWFORGE_INTAKE_CONCURRENCY"
    )
    intake_poll_seconds: float = Field(
        default=0.1, ge=0.01, le=5, validation_alias="FLOWFORGE_INTAKE_POLL_SECONDS"
    )
    # Where charges are made (see docs/payments.md): FlowForge's own database, or Stripe (or
    # the local double of Stripe's API, `python -m provider`, at `FLOWFORGE_STRIPE_API_BASE`).
    payment_provider: Literal["embedded", "stripe"] = Field(
        default="embedded", validation_alias="FLOWFORGE_PAYMENT_PROVIDER"
    )
    stripe_api_key: SecretStr = Field(default=SecretStr(""), validation_alias="STRIPE_API_KEY")
    stripe_api_base: str = Field(
        default="https://api.stripe.com", validation_alias="FLOWFORGE_STRIPE_API_BASE"
    )
    stripe_allow_live: bool = Field(default=False, validation_alias="FLOWFORGE_STRIPE_ALLOW_LIVE")
    payment_currency: str = Field(
        default="usd", pattern=r"^[a-z]{3}$", validation_alias="FLOWFORGE_PAYMENT_CURRENCY"
    )
    payment_connect_timeout: float = Field(
        default=2.0,
        gt=0,
        le=60,
        allow_inf_nan=False,
        validation_alias="FLOWFORGE_PAYMENT_CONNECT_TIMEOUT",
    )
    payment_read_timeout: float = Field(
        default=5.0,
        gt=0,
        le=300,
        allow_inf_nan=False,
        validation_alias="FLOWFORGE_PAYMENT_READ_TIMEOUT",
    )
    payment_outage_seconds: float = Field(
        default=30.0,
        ge=0,
        le=600,
        allow_inf_nan=False,
        validation_alias="FLOWFORGE_PAYMENT_OUTAGE_SECONDS",
    )
    run_log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        default="WARNING", validation_alias="FLOWFORGE_RUN_LOG_LEVEL"
    )

    @field_validator("stripe_api_base")
    @classmethod
    def _http_url(cls, value: str) -> str:
        """An http(s) URL with a host."""
        scheme, _, rest = value.partition("://")
        if scheme not in {"http", "https"} or not rest.strip("/"):
            raise ValueError(f"{value!r} is not an http:// or https:// URL")
        return value.rstrip("/")

    @field_validator("payment_currency", mode="before")
    @classmethod
    def _lower(cls, value: object) -> object:
        return value.lower() if isinstance(value, str) else value

    @model_validator(mode="after")
    def _stripe_key(self) -> Settings:
        """Stripe needs a secret key; a live one only when explicitly allowed. The messages
        never repeat the key."""
        key = self.stripe_api_key.get_secret_value()
        if self.payment_provider == "stripe" and not key:
            raise ValueError("FLOWFORGE_PAYMENT_PROVIDER=stripe needs STRIPE_API_KEY (sk_test_...)")
        if key and not key.startswith(("sk_", "rk_")):
            raise ValueError(
                "STRIPE_API_KEY is not a Stripe secret key (sk_test_... or rk_test_...)"
            )
        if key.startswith(("sk_live_", "rk_live_")) and not self.stripe_allow_live:
            raise ValueError(
                "STRIPE_API_KEY is a live key: it moves real money; refused unless"
                " FLOWFORGE_STRIPE_ALLOW_LIVE=true"
            )
        return self

    @model_validator(mode="before")
    @classmethod
    def _retired(cls, data: object) -> object:
        """The variables of the payment provider before Stripe are refused, never ignored (an
        order would silently be charged in FlowForge's own database)."""
        if retired := sorted(RETIRED_VARIABLES & set(os.environ)):
            raise ValueError(
                f"{', '.join(retired)}: retired with the provider's own contract; set"
                " FLOWFORGE_PAYMENT_PROVIDER=stripe, STRIPE_API_KEY and, for the local double,"
                " FLOWFORGE_STRIPE_API_BASE (docs/payments.md)"
            )
        return data

    @field_validator("retry_delays", mode="before")
    @classmethod
    def _split_delays(cls, value: object) -> object:
        if isinstance(value, str):
            return [float(part) for part in value.split(",") if part.strip()] or [0.0]
        if isinstance(value, int | float):
            return [float(value)]
        return value

    def is_embedded_default(self) -> bool:
        """No database configured: the SQLite file that the first use may create."""
        return not self.database_url and "FLOWFORGE_DB_PATH" not in os.environ

    def resolved_database_url(self) -> str:
        """`DATABASE_URL`, or the SQLite file at `FLOWFORGE_DB_PATH`."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{Path(self.db_path).expanduser().absolute()}"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The settings; a malformed variable is a user mistake: one line on stderr, exit 2."""
    try:
        return Settings()
    except ValidationError as exc:
        problems = "; ".join(
            f"{error['loc'][0]}: {error['msg']}"
            if error["loc"]
            else error["msg"].removeprefix("Value error, ")
            for error in exc.errors(include_url=False)
        )
        print(f"flowforge: invalid configuration: {problems}", file=sys.stderr)
        raise SystemExit(2) from None
