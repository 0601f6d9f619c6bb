"""Money: charged, refunded, net, and the newest payments."""

from __future__ import annotations

import streamlit as st

from dashboard.data import read
from dashboard.style import coloured, money_text
from storage.dashboard_queries import money, recent_payments

PAYMENTS_SHOWN = 100


def render() -> None:
    """Totals as metrics, then the payments table."""
    totals = read(money)
    for column, key in zip(st.columns(3), ("charged", "refunded", "net"), strict=True):
        column.metric(key.capitalize(), money_text(totals[key]))
    payments = read(recent_payments, limit=PAYMENTS_SHOWN)
    if not payments:
        st.caption("No payment yet.")
        return
    st.dataframe(
        coloured(payments),
        hide_index=True,
        width="stretch",
        column_order=(
            "charge_id",
            "order_id",
            "amount",
            "provider",
            "status",
            "payment_method",
            "created_at",
        ),
        column_config={
            "amount": st.column_config.NumberColumn("amount (cents)"),
            "charge_id": "charge id",
            "order_id": "order",
            "payment_method": "method",
            "created_at": "charged at",
        },
        height=260,
    )
    if len(payments) == PAYMENTS_SHOWN:
        st.caption(f"The newest {PAYMENTS_SHOWN} payments.")
