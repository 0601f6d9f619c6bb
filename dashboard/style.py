"""Colours and formats shared by the sections."""

from __future__ import annotations

from typing import Any

import pandas as pd
from pandas.io.formats.style import Styler

from storage.models import ChargeRequestStatus, ChargeStatus, EventStatus, OrderStatus

STATUS_COLORS = {
    OrderStatus.COMPLETED: "#2e7d32",
    OrderStatus.FAILED: "#ef6c00",
    OrderStatus.NEEDS_ATTENTION: "#c62828",
    OrderStatus.CANCELLED: "#6d4c41",
    OrderStatus.PENDING: "#546e7a",
    OrderStatus.RUNNING: "#1565c0",
    OrderStatus.COMPENSATING: "#8e24aa",
    # records and attempts
    ChargeStatus.CHARGED: "#2e7d32",
    ChargeStatus.REFUNDED: "#ef6c00",
    EventStatus.COMPENSATED: "#00838f",
}
BADGE_COLORS = {
    OrderStatus.COMPLETED: "green",
    OrderStatus.FAILED: "orange",
    OrderStatus.NEEDS_ATTENTION: "red",
    OrderStatus.CANCELLED: "gray",
    OrderStatus.PENDING: "gray",
    OrderStatus.RUNNING: "blue",
    OrderStatus.COMPENSATING: "violet",
    # charge requests to Stripe
    ChargeRequestStatus.SENDING: "blue",
    ChargeRequestStatus.UNREACHABLE: "orange",
    ChargeRequestStatus.IN_DOUBT: "red",
    ChargeRequestStatus.CHARGED: "green",
    ChargeRequestStatus.DECLINED: "gray",
    ChargeRequestStatus.CANCELED: "gray",
}


def status_badge(status: str) -> str:
    """Markdown for a status as a coloured badge."""
    return f":{BADGE_COLORS.get(status, 'gray')}-badge[{status}]"


def status_color(status: str) -> str:
    """The colour of a status (grey when unknown)."""
    return STATUS_COLORS.get(status, "#757575")


def money_text(cents: int) -> str:
    """Cents as a currency amount, e.g. 12,345.00."""
    return f"{cents / 100:,.2f}"


def seconds_text(seconds: float | None) -> str:
    """A latency for a KPI: ms under a second, seconds under a minute, minutes above."""
    if seconds is None:
        return "—"
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.2f} s"
    return f"{seconds / 60:.1f} min"


def coloured(rows: list[dict[str, Any]], column: str = "status") -> Styler | pd.DataFrame:
    """A table whose `column` cells are coloured by status."""
    frame = pd.DataFrame(rows)
    if frame.empty:
        return frame
    return frame.style.map(
        lambda value: f"color: white; background-color: {status_color(value)}", subset=[column]
    )
