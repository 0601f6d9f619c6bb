"""Stock per product: available and reserved as stacked bars, with the total received."""

from __future__ import annotations

import altair as alt
import pandas as pd
import streamlit as st

from dashboard.data import read
from storage.snapshot import inventory

STOCK_COLORS = {"available": "#2e7d32", "reserved": "#ef6c00"}


def render() -> None:
    """The stock chart and table."""
    products = read(inventory)
    frame = pd.DataFrame([p.model_dump() for p in products])
    long = frame.melt(
        id_vars=["product_id", "total_received"],
        value_vars=list(STOCK_COLORS),
        var_name="stock",
        value_name="units",
    )
    chart = (
        alt.Chart(long)
        .mark_bar()
        .encode(
            y=alt.Y("product_id:N", title=None),
            x=alt.X("units:Q", title="units", stack="zero"),
            color=alt.Color(
                "stock:N",
                scale=alt.Scale(domain=list(STOCK_COLORS), range=list(STOCK_COLORS.values())),
                legend=alt.Legend(title=None),
            ),
            order=alt.Order("stock:N"),
            tooltip=["product_id", "stock", "units", "total_received"],
        )
        .properties(height=40 * len(products) + 20)
    )
    st.altair_chart(chart, width="stretch")
    st.dataframe(
        frame[["product_id", "name", "available", "reserved", "total_received"]],
        hide_index=True,
        width="stretch",
        column_config={"total_received": "received", "product_id": "product"},
    )
