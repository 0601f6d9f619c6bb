"""The provider's own tests share one provider process per session."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from provider.client import ProviderClient
from tests.provider.helpers import API_KEY, Running, running_provider


@pytest.fixture(scope="session")
def provider(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    """The session's provider process."""
    with running_provider(tmp_path_factory.mktemp("provider") / "p.sqlite3") as running:
        yield running


@pytest.fixture
def provider_url(provider: Running) -> str:
    return provider.url


@pytest.fixture
def client(provider_url: str) -> Iterator[ProviderClient]:
    """A client on the session's provider; the faults are cleared after each test."""
    with ProviderClient(provider_url, API_KEY) as client:
        yield client
        client.set_faults({})


@pytest.fixture
def key() -> str:
    """A fresh idempotency-key prefix (the session's database is shared)."""
    return f"k-{uuid.uuid4().hex[:12]}"
