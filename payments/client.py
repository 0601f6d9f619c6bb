"""This process's one client of the payment provider (`FLOWFORGE_PAYMENT_URL`), shared by the
payment step and the reconciliation."""

from __future__ import annotations

from functools import lru_cache

from provider.client import ProviderClient
from storage.settings import get_settings


@lru_cache(maxsize=4)
def _client(url: str, api_key: str, connect: float, read: float) -> ProviderClient:
    return ProviderClient(url, api_key, connect_timeout=connect, read_timeout=read)


def provider_client() -> ProviderClient | None:
    """The one client of this process for the configured provider; None when there is none."""
    settings = get_settings()
    if not settings.payment_url:
        return None
    return _client(
        settings.payment_url,
        settings.payment_api_key,
        settings.payment_connect_timeout,
        settings.payment_read_timeout,
    )
