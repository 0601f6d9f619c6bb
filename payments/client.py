"""This process's one client of Stripe (`FLOWFORGE_PAYMENT_PROVIDER=stripe`): the official SDK
over one long-lived httpx client, shared by the payment step and the reconciliation. It never
retries (the step does, with the same idempotency keys) and speaks FlowForge's words: Stripe's
PaymentIntents as `Intent`s, its failures as one of the `ProviderError`s below.

- `Unreachable`: nothing was sent (no connection): safe to send again at once.
- `InDoubt`: it may or may not have happened (a timeout or a dropped connection after sending,
  a 5xx, a 409 while the same key is in flight, a 429): retried by the step under the same key.
- `Declined`: a `CardError` (402): a domain refusal, never retried.
- `Rejected`: any other 4xx, Stripe's message kept; `KeyReused` (`idempotency_error`: the key
  was used with other parameters), `AlreadyRefunded` (`charge_already_refunded`) and
  `UnexpectedState` (`payment_intent_unexpected_state`) are its cases that callers tell apart.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache

import httpx
import stripe

from storage.settings import get_settings

PAGE_SIZE = 100
NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


class ProviderError(Exception):
    """A failed Stripe call; `str()` is one line: the operation and Stripe's message."""

    def __init__(self, message: str, *, status_code: int | None = None, code: str | None = None):
        self.message = " ".join(message.split())
        self.status_code = status_code
        self.code = code
        super().__init__(self.message)


class Unreachable(ProviderError):
    """The request certainly never reached Stripe (nothing was sent)."""


class InDoubt(ProviderError):
    """The request may or may not have taken effect."""


class Declined(ProviderError):
    """The card was declined (402 card_error)."""


class Rejected(ProviderError):
    """Any other 4xx: the request itself was refused."""


class KeyReused(Rejected):
    """`idempotency_error`: the key was first used with other parameters."""


class AlreadyRefunded(Rejected):
    """The charge was already refunded (under another idempotency key)."""


class UnexpectedState(Rejected):
    """The PaymentIntent's status does not allow this (confirm a succeeded one, cancel...)."""


@dataclass(frozen=True)
class Intent:
    """A PaymentIntent as FlowForge reads it: `refunded` is its charge's."""

    id: str
    order_id: str | None
    customer_id: str
    payment_method: str  # as the order names it (`tok_visa`), not the PaymentMethod's id
    amount: int
    currency: str
    status: str
    refunded: bool
    created: int

    @property
    def succeeded(self) -> bool:
        return self.status == "succeeded"

    @classmethod
    def of(cls, intent: stripe.PaymentIntent) -> Intent:
        charge = intent.latest_charge
        metadata = intent.metadata.to_dict() if intent.metadata else {}
        return cls(
            id=intent.id,
            order_id=metadata.get("order_id"),
            customer_id=metadata.get("customer_id", ""),
            payment_method=metadata.get("payment_method", ""),
            amount=intent.amount,
            currency=intent.currency,
            status=intent.status,
            refunded=isinstance(charge, stripe.Charge) and charge.refunded,
            created=intent.created,
        )


_SPECIFIC: dict[str, type[Rejected]] = {
    "charge_already_refunded": AlreadyRefunded,
    "payment_intent_unexpected_state": UnexpectedState,
}


@contextmanager
def _translated(where: str) -> Iterator[None]:
    """Stripe's exceptions as FlowForge's, each with one line saying where it happened."""
    try:
        yield
    except stripe.APIConnectionError as exc:
        cause = exc.__cause__
        what = f"{type(cause).__name__}: {cause}" if cause else str(exc)
        if isinstance(cause, NOT_SENT):
            raise Unreachable(f"{where}: Stripe unreachable: {what}") from exc
        raise InDoubt(f"{where}: outcome unknown: {what}") from exc
    except stripe.StripeError as exc:
        status, code = exc.http_status, exc.code
        text = f"{where}: {status} {exc.user_message or exc}"
        if isinstance(exc, stripe.CardError):
            raise Declined(text, status_code=status, code=code) from exc
        if isinstance(exc, stripe.IdempotencyError):
            raise KeyReused(text, status_code=status, code=code) from exc
        if status is not None and 400 <= status < 500 and status not in (409, 429):
            kind = _SPECIFIC.get(code or "", Rejected)
            raise kind(text, status_code=status, code=code) from exc
        raise InDoubt(text, status_code=status, code=code) from exc


class StripeGateway:
    """The PaymentIntents API over the SDK's `StripeClient` (thread-safe; no retries)."""

    def __init__(
        self,
        api_key: str,
        api_base: str,
        *,
        currency: str = "usd",
        connect_timeout: float = 2.0,
        read_timeout: float = 5.0,
    ) -> None:
        self.currency = currency
        self._http = stripe.HTTPXClient(
            timeout=httpx.Timeout(read_timeout, connect=connect_timeout), allow_sync_methods=True
        )
        self._stripe = stripe.StripeClient(
            api_key,
            base_addresses={"api": api_base},
            http_client=self._http,
            max_network_retries=0,
        ).v1

    def close(self) -> None:
        self._http.close()

    def create_intent(
        self,
        *,
        order_id: str,
        customer_id: str,
        amount: int,
        payment_method: str,
        idempotency_key: str,
    ) -> Intent:
        """A PaymentIntent for the order, not confirmed: no money moves. A test token
        (`tok_visa`) becomes a PaymentMethod first, as Stripe documents, under a key derived
        from `idempotency_key` (so that asking again names the same PaymentMethod, and the
        intent's parameters are the same)."""
        method_id = payment_method
        if payment_method.startswith("tok_"):
            with _translated("payment_methods.create"):
                method_id = self._stripe.payment_methods.create(
                    params={"type": "card", "card": {"token": payment_method}},
                    options={"idempotency_key": f"{idempotency_key}:payment_method"},
                ).id
        with _translated("payment_intents.create"):
            intent = self._stripe.payment_intents.create(
                params={
                    "amount": amount,
                    "currency": self.currency,
                    "payment_method": method_id,
                    "payment_method_types": ["card"],
                    "metadata": {
                        "order_id": order_id,
                        "customer_id": customer_id,
                        "payment_method": payment_method,
                    },
                },
                options={"idempotency_key": idempotency_key},
            )
        return Intent.of(intent)

    def confirm(self, intent_id: str, *, idempotency_key: str) -> Intent:
        """Confirm the intent: the request that moves money."""
        with _translated(f"payment_intents.confirm {intent_id}"):
            intent = self._stripe.payment_intents.confirm(
                intent_id,
                params={"expand": ["latest_charge"]},
                options={"idempotency_key": idempotency_key},
            )
        return Intent.of(intent)

    def retrieve(self, intent_id: str) -> Intent | None:
        """The intent as Stripe holds it now (strongly consistent); None if it has none."""
        try:
            with _translated(f"payment_intents.retrieve {intent_id}"):
                intent = self._stripe.payment_intents.retrieve(
                    intent_id, params={"expand": ["latest_charge"]}
                )
        except Rejected as exc:
            if exc.status_code == 404:
                return None
            raise
        return Intent.of(intent)

    def cancel(self, intent_id: str, *, idempotency_key: str) -> Intent:
        """Cancel an intent that has not succeeded: it can never move money afterwards."""
        with _translated(f"payment_intents.cancel {intent_id}"):
            intent = self._stripe.payment_intents.cancel(
                intent_id,
                params={"cancellation_reason": "abandoned"},
                options={"idempotency_key": idempotency_key},
            )
        return Intent.of(intent)

    def refund(self, intent_id: str, *, idempotency_key: str) -> str:
        """Refund a succeeded intent in full; the refund's id."""
        with _translated(f"refunds.create {intent_id}"):
            return self._stripe.refunds.create(
                params={"payment_intent": intent_id},
                options={"idempotency_key": idempotency_key},
            ).id

    def intents(self) -> Iterator[Intent]:
        """Every PaymentIntent, newest first, page after page (`starting_after`)."""
        cursor: dict[str, str] = {}
        while True:
            with _translated("payment_intents.list"):
                page = self._stripe.payment_intents.list(
                    params={"limit": PAGE_SIZE, "expand": ["data.latest_charge"], **cursor}
                )
            yield from map(Intent.of, page.data)
            if not page.has_more or not page.data:
                return
            cursor = {"starting_after": page.data[-1].id}


@lru_cache(maxsize=4)
def _gateway(key: str, base: str, currency: str, connect: float, read: float) -> StripeGateway:
    return StripeGateway(key, base, currency=currency, connect_timeout=connect, read_timeout=read)


def stripe_gateway() -> StripeGateway | None:
    """The one client of this process for Stripe; None when charges stay in FlowForge's
    database (`FLOWFORGE_PAYMENT_PROVIDER=embedded`)."""
    settings = get_settings()
    if settings.payment_provider != "stripe":
        return None
    return _gateway(
        settings.stripe_api_key.get_secret_value(),
        settings.stripe_api_base,
        settings.payment_currency,
        settings.payment_connect_timeout,
        settings.payment_read_timeout,
    )
