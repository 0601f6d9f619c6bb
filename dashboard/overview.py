"""The top of the page: the audit's verdict as a badge and the KPIs."""

from __future__ import annotations

import streamlit as st

from dashboard.data import audit_problems, read
from dashboard.style import seconds_text
from storage.dashboard_queries import latency_percentiles, status_counts
from storage.db import database_url
from storage.models import ACTIVE_STATUSES, TERMINAL_STATUSES, OrderStatus

MAX_VIOLATIONS_SHOWN = 20
COUNT_LABELS = (
    "Orders",
    "Completed",
    "Failed (compensated)",
    "Needs attention",
    "Cancelled",
)
HEALTH_LABELS = ("In progress", "Success rate", "Latency p50", "Latency p95")


def audit_badge() -> None:
    """Green when every invariant holds; red with the violations listed otherwise."""
    problems = audit_problems(database_url())
    if not problems:
        st.badge(
            "audit clean: every invariant holds", icon=":material/check_circle:", color="green"
        )
        return
    st.badge(f"audit: {len(problems)} violations", icon=":material/error:", color="red")
    with st.expander("Violated invariants", expanded=True):
        st.markdown("\n".join(f"- {problem}" for problem in problems[:MAX_VIOLATIONS_SHOWN]))
        if len(problems) > MAX_VIOLATIONS_SHOWN:
            st.caption(f"… and {len(problems) - MAX_VIOLATIONS_SHOWN} more")


def kpis() -> int:
    """Show the KPIs; return the number of orders."""
    counts = read(status_counts)
    latency = read(latency_percentiles)
    total = sum(counts.values())
    finished = sum(counts.get(status, 0) for status in TERMINAL_STATUSES)
    completed = counts.get(OrderStatus.COMPLETED, 0)
    counted = (
        total,
        completed,
        counts.get(OrderStatus.FAILED, 0),
        counts.get(OrderStatus.NEEDS_ATTENTION, 0),
        counts.get(OrderStatus.CANCELLED, 0),
    )
    health = (
        sum(counts.get(status, 0) for status in ACTIVE_STATUSES),
        f"{completed / finished:.1%}" if finished else "—",
        seconds_text(latency[0.5]),
        seconds_text(latency[0.95]),
    )
    for labels, values in ((COUNT_LABELS, counted), (HEALTH_LABELS, health)):
        for column, label, value in zip(st.columns(len(labels)), labels, values, strict=True):
            column.metric(label, value, border=True)
    return total
