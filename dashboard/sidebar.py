"""The sidebar: auto-refresh controls and the place-an-order form."""

from __future__ import annotations

import argparse

import streamlit as st
from sqlalchemy.engine import make_url

from dashboard import actions
from dashboard.data import read
from storage.db import database_url
from storage.models import MAX_QUANTITY
from storage.snapshot import inventory

REFRESH_CHOICES = (2, 5, 10, 30)


def refresh_every() -> float | None:
    """The auto-refresh toggle (on by default) and period; None when paused."""
    on = st.sidebar.toggle("Auto-refresh", value=True, key="auto_refresh")
    seconds = st.sidebar.select_slider(
        "Every (seconds)", REFRESH_CHOICES, value=5, key="refresh_seconds", disabled=not on
    )
    return seconds if on else None


def order_form() -> None:
    """Place an order: a product from the catalog and its quantity, more lines as
    `PRODUCT:UNITS`, customer (and a fault for demos)."""
    products = [p.product_id for p in read(inventory)]
    with st.sidebar.form("place_order", clear_on_submit=False):
        st.markdown("**Place an order**")
        product_id = st.selectbox("Product", products, key="new_product")
        quantity = st.number_input(
            "Quantity", min_value=1, max_value=MAX_QUANTITY, value=1, step=1, key="new_quantity"
        )
        more = st.text_input(
            "More lines",
            placeholder="SKU-003:1, SKU-002:2",
            help="other products of the same order, as PRODUCT:UNITS separated by commas",
            key="new_more_lines",
        )
        customer_id = st.text_input("Customer", value="cust-dashboard", key="new_customer")
        payment_method = st.text_input("Payment method", value="tok_visa", key="new_payment")
        fail_at = ""
        if actions.faults_allowed():
            fail_at = st.selectbox(
                "Inject a fault (FAIL_AT)",
                actions.FAULT_CHOICES,
                format_func=lambda choice: choice or "none",
                key="new_fault",
            )
        if st.form_submit_button("Place order", type="primary"):
            try:
                lines = actions.cart_lines((product_id, int(quantity)), more)
            except argparse.ArgumentTypeError as exc:
                actions.notify("error", f"order not placed: more lines: {exc}")
                return
            actions.place_order(
                lines=lines,
                customer_id=customer_id.strip() or "cust-dashboard",
                payment_method=payment_method.strip() or "tok_visa",
                fail_at=fail_at,
            )


def render() -> float | None:
    """Draw the sidebar; return the auto-refresh period."""
    st.sidebar.title("FlowForge")
    every = refresh_every()
    order_form()
    server = actions.prefect_api_url()
    st.sidebar.caption(
        f"Database: `{make_url(database_url()).render_as_string(hide_password=True)}`  \n"
        + (f"Prefect: `{server}`" if server else "Prefect: no server configured")
    )
    return every
