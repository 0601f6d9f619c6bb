"""The page layout: sidebar, then the live part that refreshes itself."""

from __future__ import annotations

import streamlit as st

from dashboard import failures, gate, money, orders, overview, saga_view, sidebar, stock
from dashboard.actions import NOTICE_KEY

EMPTY_STATE = (
    "**No orders yet.** Place one with the form in the sidebar, or from a terminal:\n\n"
    "`python -m flows.fulfill --product SKU-001 --quantity 2 --customer c1"
    " --payment-method tok_visa`"
)


def live() -> None:
    """Everything read from the database: redrawn on every refresh."""
    title, badge = st.columns([3, 2], vertical_alignment="bottom")
    title.title("FlowForge orders")
    with badge:
        overview.audit_badge()
    if NOTICE_KEY in st.session_state:
        kind, message = st.session_state.pop(NOTICE_KEY)
        getattr(st, kind)(message)
    total = overview.kpis()
    if not total:
        st.info(EMPTY_STATE)
        st.subheader("Stock")
        stock.render()
        return
    st.subheader("Orders")
    picked = orders.render()
    if picked:
        st.subheader("Saga")
        saga_view.render(picked)
    left, right = st.columns(2)
    with left:
        st.subheader("Stock")
        stock.render()
    with right:
        st.subheader("Money")
        money.render()
    st.subheader("Failures")
    failures.render()


def main() -> None:
    """Render the dashboard."""
    st.set_page_config(page_title="FlowForge", page_icon="🔁", layout="wide")
    if not gate.signed_in():
        return
    every = sidebar.render()
    st.fragment(live, run_every=every)()
