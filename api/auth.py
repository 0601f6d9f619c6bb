"""Bearer-token authentication: on when `FLOWFORGE_API_TOKEN` is set; `/metrics` takes its own
`FLOWFORGE_METRICS_TOKEN` instead when that is set."""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import Depends, HTTPException, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from storage.settings import get_settings

bearer = HTTPBearer(
    auto_error=False,
    description="FLOWFORGE_API_TOKEN when it is set (on /metrics: FLOWFORGE_METRICS_TOKEN if set)",
)
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]


def _check(credentials: HTTPAuthorizationCredentials | None, expected: str) -> None:
    """Refuse the request unless `expected` is empty or the request carries it (compared in
    constant time)."""
    if not expected:
        return
    given = credentials.credentials if credentials else ""
    if not secrets.compare_digest(given.encode(), expected.encode()):
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "missing or invalid bearer token",
            headers={"WWW-Authenticate": "Bearer"},
        )


def require_token(credentials: Credentials) -> None:
    """Refuse the request unless it carries the API token."""
    _check(credentials, get_settings().api_token)


def require_metrics_token(credentials: Credentials) -> None:
    """`/metrics`: only the metrics token when one is set, otherwise the API token."""
    settings = get_settings()
    _check(credentials, settings.metrics_token or settings.api_token)
