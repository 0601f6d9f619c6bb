"""Charges at a provider over HTTP and their charge requests, shown on the page under AppTest:
here rows of an older database, charged at the provider of before Stripe (`provider = http`),
which must keep reading as they are."""

from __future__ import annotations

import pandas as pd
from streamlit.testing.v1 import AppTest

from flows.fulfill import order_summary, record_order
from storage.db import session_scope
from storage.models import ChargeRequest, ChargeRequestStatus, OrderCreate, Payment, PaymentProvider
from tests.dashboard.helpers import markdown, render, rerun

CHARGE_ID = "ch_test123"
TIMEOUT = "read timed out after 5.0 s"


def http_order_in_doubt() -> str:
    """An order charged at the HTTP provider whose charge request was left in doubt."""
    order_id, _ = record_order(
        OrderCreate(
            product_id="SKU-001", quantity=2, customer_id="cust-http", payment_method="tok_visa"
        )
    )
    key, amount = f"{order_id}:payment", order_summary(order_id).amount
    with session_scope() as session:
        session.add(
            Payment(
                charge_id=CHARGE_ID,
                order_id=order_id,
                idempotency_key=key,
                amount=amount,
                payment_method="tok_visa",
                customer_id="cust-http",
                provider=PaymentProvider.HTTP,
            )
        )
        session.add(
            ChargeRequest(
                idempotency_key=key,
                order_id=order_id,
                amount=amount,
                status=ChargeRequestStatus.IN_DOUBT,
                attempts=2,
                charge_id=CHARGE_ID,
                message=TIMEOUT,
            )
        )
    return order_id


def record(page: AppTest, field: str) -> pd.Series:
    """The first of the order's records (fields as rows) that has `field`."""
    frame = next(f.value for f in page.dataframe if field in f.value.index)
    return frame["#1"]


def test_money_table_shows_the_provider_its_charge_id_and_state(db):
    order_id = http_order_in_doubt()
    page = render()
    payments = next(f for f in page.dataframe if "payment_method" in f.value.columns)
    assert "provider" in payments.proto.column_order
    row = payments.value.set_index("charge_id").loc[CHARGE_ID]
    assert (row["order_id"], row["provider"], row["status"]) == (order_id, "http", "charged")


def test_order_view_shows_its_payment_and_its_charge_request_in_doubt(db):
    order_id = http_order_in_doubt()
    page = render()
    page.selectbox(key="picked_order").select(order_id)
    rerun(page)
    payment = record(page, "provider")
    assert (payment["provider"], payment["charge_id"], payment["status"]) == (
        "http",
        CHARGE_ID,
        "charged",
    )
    request = record(page, "attempts")
    assert (request["status"], request["attempts"], request["message"]) == (
        "in_doubt",
        "2",
        TIMEOUT,
    )
    assert "**Charge request** :red-badge[in_doubt] · 2 attempts" in markdown(page)
    captions = [caption.value for caption in page.caption]
    assert any(text.startswith("In doubt: it may have charged") for text in captions)
    assert f"Last error: {TIMEOUT}" in captions
