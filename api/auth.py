"""Bearer-token authentication: on when `FLOWFORGE_API_TOKEN` is set."""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import Depends, HTTPException, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from storage.settings import get_settings

bearer = HTTPBearer(auto_error=False, description="FLOWFORGE_API_TOKEN, when it is set")


def require_token(
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> None:
    """Refuse the request unless it carries the configured token (compared in constant time)."""
    expected = get_settings().api_token
    if not expected:
        return
    given = credentials.credentials if credentials else ""
    if not secrets.compare_digest(given.encode(), expected.encode()):
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "missing or invalid bearer token",
            headers={"WWW-Authenticate": "Bearer"},
        )
