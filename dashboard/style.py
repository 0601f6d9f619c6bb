"""Colours and formats shared by the sections."""

from __future__ import annotations

from typing import Any

import pandas as pd
from pandas.io.formats.style import Styler

STATUS_COLORS = {
    "completed": "#2e7d32",
    "failed": "#ef6c00",
    "needs_attention": "#c62828",
    "cancelled": "#6d4c41",
    "pending": "#546e7a",
    "running": "#1565c0",
    "compensating": "#8e24aa",
    # records and attempts
    "charged": "#2e7d32",
    "refunded": "#ef6c00",
    "compensated": "#00838f",
}
BADGE_COLORS = {
    "completed": "green",
    "failed": "orange",
    "needs_attention": "red",
    "cancelled": "gray",
    "pending": "gray",
    "running": "blue",
    "compensating": "violet",
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
