"""The orders table: newest first, filtered in SQL, one page at a time; and the order picker."""

from __future__ import annotations

import streamlit as st

from dashboard.data import read
from dashboard.style import coloured
from storage.dashboard_queries import OrderFilter, order_page
from storage.models import ORDER_STATUSES
from storage.snapshot import inventory

PAGE_SIZE = 25


def render() -> str | None:
    """Show the filters and one page of orders; return the order picked below the table."""
    products = [p.product_id for p in read(inventory)]
    statuses, product_ids, search = st.columns(3)
    order_filter = OrderFilter(
        statuses=statuses.multiselect("Status", ORDER_STATUSES, key="filter_status"),
        products=product_ids.multiselect("Product", products, key="filter_product"),
        search=search.text_input("Search by order id", key="filter_search"),
    )
    found = read(
        order_page,
        order_filter=order_filter,
        page=st.session_state.get("orders_page", 1),
        page_size=PAGE_SIZE,
    )
    if not found.rows:
        st.info("No order matches these filters.")
        return None
    st.dataframe(
        coloured(found.rows),
        hide_index=True,
        width="stretch",
        column_config={
            "order_id": "order id",
            "lines": st.column_config.TextColumn("lines", width="medium"),
            "customer_id": "customer",
            "created_at": st.column_config.DatetimeColumn("started", format="YYYY-MM-DD HH:mm:ss"),
            "duration_s": st.column_config.NumberColumn("duration (s)", format="%.2f"),
            "failure_reason": st.column_config.TextColumn("failure reason", width="large"),
        },
    )
    pager, count = st.columns([3, 1])
    with pager:
        st.pagination(found.pages, key="orders_page")
    count.caption(f"{found.total} orders · page {found.page} of {found.pages}")
    options = [r["order_id"] for r in found.rows]
    picked, same_filter = st.session_state.get("picked_order"), repr(order_filter)
    if picked and picked not in options and st.session_state.get("picked_filter") == same_filter:
        options.insert(0, picked)  # new orders pushed it off this page: it stays picked
    st.session_state["picked_filter"] = same_filter
    return st.selectbox("Order", options, key="picked_order")
