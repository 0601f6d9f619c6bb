"""Reads for the page: each in its own short transaction, so writers are never held up long."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import streamlit as st

from payments.audit import audit
from storage.db import session_scope

T = TypeVar("T")
AUDIT_TTL_SECONDS = 30


def read(query: Callable[..., T], /, **kwargs: Any) -> T:
    """Run `query(session, **kwargs)` in a transaction of its own."""
    with session_scope(readonly=True) as session:
        return query(session, **kwargs)


@st.cache_data(ttl=AUDIT_TTL_SECONDS, show_spinner=False)
def audit_problems(url: str) -> list[str]:
    """The audit of the database at `url`: the slowest read, so it is re-run at most every
    AUDIT_TTL_SECONDS (and right after a button changed something)."""
    with session_scope(url, readonly=True) as session:
        return audit(session)
