"""The HTTP client FlowForge uses to talk to the payment provider.

Contract: every call is one HTTP request on one long-lived, thread-safe `httpx.Client`; the
client never retries (the caller's task does, with the same idempotency key). Failures are
`ProviderError`s: `Unreachable` (certainly never sent: safe to retry), `InDoubt` (may or may
not have happened: timeouts after sending, dropped connections, 5xx; retry with the same key or
look the charge up by key), `Declined` (402, a domain refusal: never retry), `AlreadyRefunded`
(400 charge_already_refunded) and `Rejected` (any other 4xx: a bug on our side).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, fields
from types import TracebackType
from typing import Any, TypeVar

import httpx

PAGE_SIZE = 100
T = TypeVar("T")


class ProviderError(Exception):
    """A failed provider call; `str()` is one line with the provider's message."""

    def __init__(
        self, message: str, *, status_code: int | None = None, code: str | None = None
    ) -> None:
        self.message = " ".join(message.split())
        self.status_code = status_code
        self.code = code
        super().__init__(self.message)


class Unreachable(ProviderError):
    """The request certainly never reached the provider (nothing was sent)."""


class InDoubt(ProviderError):
    """The request may or may not have taken effect."""


class Declined(ProviderError):
    """The card was declined (402 card_error)."""


class AlreadyRefunded(ProviderError):
    """The charge was already refunded under another idempotency key."""


class Rejected(ProviderError):
    """Any other 4xx: the request itself was wrong (bad body or key, unknown id, key reuse)."""


@dataclass(frozen=True)
class Charge:
    """A charge as the provider reports it."""

    id: str
    amount: int
    currency: str
    payment_method: str
    customer: str | None
    status: str
    refunded: bool
    amount_refunded: int
    idempotency_key: str
    order_id: str | None
    created: int

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Charge:
        order_id = (data.get("metadata") or {}).get("order_id")
        return _from_json(cls, {**data, "order_id": order_id})


@dataclass(frozen=True)
class Refund:
    """A refund as the provider reports it."""

    id: str
    charge: str
    amount: int
    status: str
    created: int

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Refund:
        return _from_json(cls, data)


def _from_json(cls: type[T], data: dict[str, Any]) -> T:
    """The dataclass `cls` from the provider's JSON object (its other keys are ignored)."""
    return cls(**{field.name: data[field.name] for field in fields(cls)})  # type: ignore[arg-type]


class ProviderClient:
    """The provider's API over one long-lived `httpx.Client` (thread-safe; no retries)."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        connect_timeout: float = 2.0,
        read_timeout: float = 5.0,
    ) -> None:
        self._http = httpx.Client(
            base_url=base_url,
            headers={"Authorization": f"Bearer {api_key}"},
            timeout=httpx.Timeout(read_timeout, connect=connect_timeout),
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> ProviderClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def charge(
        self,
        *,
        idempotency_key: str,
        amount: int,
        payment_method: str,
        order_id: str,
        customer: str | None = None,
        currency: str = "usd",
    ) -> Charge:
        """Charge once per idempotency key (the same key and body return the same charge)."""
        body = {
            "amount": amount,
            "currency": currency,
            "payment_method": payment_method,
            "customer": customer,
            "metadata": {"order_id": order_id},
        }
        data = self._call("POST", "/v1/charges", json=body, idempotency_key=idempotency_key)
        return Charge.from_json(data)

    def refund(self, *, charge_id: str, idempotency_key: str) -> Refund:
        """Refund a charge in full, once per idempotency key."""
        data = self._call(
            "POST", "/v1/refunds", json={"charge": charge_id}, idempotency_key=idempotency_key
        )
        return Refund.from_json(data)

    def find_charge(self, idempotency_key: str) -> Charge | None:
        """The charge made under this idempotency key, if any."""
        data = self._call("GET", "/v1/charges", params={"idempotency_key": idempotency_key})
        return Charge.from_json(data["data"][0]) if data["data"] else None

    def get_charge(self, charge_id: str) -> Charge | None:
        """The charge with this id, or None if the provider has none."""
        try:
            return Charge.from_json(self._call("GET", f"/v1/charges/{charge_id}"))
        except Rejected as exc:
            if exc.status_code == 404:
                return None
            raise

    def charges(self, order_id: str | None = None) -> Iterator[Charge]:
        """Every charge (of one order, if given), oldest first, page after page."""
        params = {} if order_id is None else {"order_id": order_id}
        for item in self._pages("/v1/charges", params):
            yield Charge.from_json(item)

    def refunds(self, charge_id: str) -> list[Refund]:
        """The refunds of a charge."""
        return [
            Refund.from_json(item) for item in self._pages("/v1/refunds", {"charge": charge_id})
        ]

    def set_faults(self, config: dict[str, Any]) -> None:
        """Replace the provider's test fault configuration (and reset its counters)."""
        self._call("PUT", "/v1/test/faults", json=config)

    def health(self) -> bool:
        """Whether the provider answers its health check."""
        try:
            response = self._http.get("/health")
        except httpx.HTTPError:
            return False
        return response.status_code == 200

    def _pages(self, path: str, params: dict[str, str]) -> Iterator[dict[str, Any]]:
        cursor: dict[str, str] = {}
        while True:
            page = self._call("GET", path, params={**params, **cursor, "limit": str(PAGE_SIZE)})
            yield from page["data"]
            if not page["has_more"] or not page["data"]:
                return
            cursor = {"starting_after": page["data"][-1]["id"]}

    def _call(
        self,
        method: str,
        path: str,
        *,
        json: dict[str, Any] | None = None,
        params: dict[str, str] | None = None,
        idempotency_key: str | None = None,
    ) -> dict[str, Any]:
        headers = {} if idempotency_key is None else {"Idempotency-Key": idempotency_key}
        where = f"{method} {path}"
        try:
            response = self._http.request(method, path, json=json, params=params, headers=headers)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            # PoolTimeout: no connection was free, so nothing was sent either.
            raise Unreachable(
                f"{where}: provider unreachable: {type(exc).__name__}: {exc}"
            ) from exc
        except httpx.TransportError as exc:
            raise InDoubt(f"{where}: outcome unknown: {type(exc).__name__}: {exc}") from exc
        if response.is_success:
            try:
                return response.json()
            except ValueError as exc:
                raise InDoubt(f"{where}: unreadable {response.status_code} answer") from exc
        raise _error(where, response)


def _error(where: str, response: httpx.Response) -> ProviderError:
    """The exception for a provider's error answer."""
    status = response.status_code
    try:
        error = response.json()["error"]
        message, code = str(error["message"]), error.get("code")
    except (ValueError, KeyError, TypeError):
        message, code = response.text[:200] or response.reason_phrase, None
    text = f"{where}: {status} {message}"
    if status == 402:
        return Declined(text, status_code=status, code=code)
    if status == 400 and code == "charge_already_refunded":
        return AlreadyRefunded(text, status_code=status, code=code)
    if 400 <= status < 500:
        return Rejected(text, status_code=status, code=code)
    return InDoubt(text, status_code=status, code=code)
