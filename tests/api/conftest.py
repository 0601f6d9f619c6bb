"""API test fixtures."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient


@pytest.fixture
def client(database: object) -> Iterator[TestClient]:
    """The app on a fresh database with no Prefect server configured."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from api.app import app

    with temporary_settings(restore_defaults={PREFECT_API_URL}), TestClient(app) as c:
        yield c
