"""The provider's own tests share one provider process per session."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
import stripe

from tests.provider.helpers import Running, running_provider, sdk, set_faults


@pytest.fixture(scope="session")
def provider(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    """The session's provider process."""
    with running_provider(tmp_path_factory.mktemp("provider") / "p.sqlite3") as running:
        yield running


@pytest.fixture
def provider_url(provider: Running) -> str:
    return provider.url


@pytest.fixture
def client(provider_url: str) -> Iterator[stripe.StripeClient]:
    """The official SDK on the session's provider; the faults are cleared after each test."""
    yield sdk(provider_url)
    set_faults(provider_url, {})


@pytest.fixture
def key() -> str:
    """A fresh idempotency-key prefix (the session's database is shared)."""
    return f"k-{uuid.uuid4().hex[:12]}"
