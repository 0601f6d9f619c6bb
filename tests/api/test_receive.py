"""`POST /inventory/{product_id}/receive`, and strict whole-number quantities in every body."""

from __future__ import annotations

import pytest

from storage.settings import get_settings
from tests.api.helpers import order_body

WIDGET = {
    "product_id": "SKU-001",
    "name": "Widget",
    "unit_price": 1000,
    "available": 25,
    "reserved": 0,
    "total_received": 25,
}


def row(client, product_id: str) -> dict:
    return next(p for p in client.get("/inventory").json() if p["product_id"] == product_id)


def test_receive_returns_the_products_inventory_row(client):
    response = client.post("/inventory/SKU-001/receive", json={"quantity": 40})
    assert response.status_code == 200
    received = {**WIDGET, "available": 65, "total_received": 65}
    assert response.json() == received
    assert row(client, "SKU-001") == received
    assert client.get("/audit").json() == {"clean": True, "problems": []}


def test_receive_creates_a_new_product_that_orders_are_charged_at(client):
    body = {"quantity": 5, "name": "Doohickey", "unit_price": 250}
    created = client.post("/inventory/SKU-9/receive", json=body)
    assert created.json() == {
        "product_id": "SKU-9",
        "name": "Doohickey",
        "unit_price": 250,
        "available": 5,
        "reserved": 0,
        "total_received": 5,
    }
    again = client.post("/inventory/SKU-9/receive", json={**body, "quantity": 3})
    assert (again.json()["available"], again.json()["total_received"]) == (8, 8)
    assert client.get("/audit").json()["clean"] is True
    order = client.post("/orders", json=order_body(product_id="SKU-9", quantity=2)).json()
    assert client.get(f"/orders/{order['order_id']}/status").json()["amount"] == 500


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "quantity"),
        ({"quantity": 0}, "quantity"),
        ({"quantity": -3}, "quantity"),
        ({"quantity": 1_000_001}, "quantity"),
        ({"quantity": True}, "quantity"),
        ({"quantity": "2"}, "quantity"),
        ({"quantity": 2.0}, "quantity"),
        ({"quantity": 1, "unit_price": 0}, "unit_price"),
        ({"quantity": 1, "unit_price": 1_000_001}, "unit_price"),
        ({"quantity": 1, "unit_price": "250"}, "unit_price"),
        ({"quantity": 1, "unit_price": 2.5}, "unit_price"),
        ({"quantity": 1, "name": "  "}, "name"),
        ({"quantity": 1, "name": "caf\u00e9"}, "name"),
        ({"quantity": 1, "colour": "red"}, "colour"),
    ],
)
def test_bad_receipts_are_422_naming_the_field_and_change_nothing(client, body, field):
    before = client.get("/inventory").json()
    response = client.post("/inventory/NEW-1/receive", json=body)
    assert response.status_code == 422
    assert [e["loc"][-1] for e in response.json()["detail"]] == [field]
    assert client.get("/inventory").json() == before


@pytest.mark.parametrize("product_id", ["bad%20id", "-leading-dash", "x" * 129])
def test_a_bad_product_id_is_422(client, product_id):
    before = client.get("/inventory").json()
    response = client.post(f"/inventory/{product_id}/receive", json={"quantity": 1})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["path", "product_id"]
    assert client.get("/inventory").json() == before


@pytest.mark.parametrize(
    ("changes", "detail"),
    [
        ({"unit_price": 1200}, "product 'SKU-001' has unit_price 1000, not 1200"),
        ({"name": "Sprocket"}, "product 'SKU-001' has name 'Widget', not 'Sprocket'"),
    ],
)
def test_a_different_price_or_name_for_an_existing_product_is_409(client, changes, detail):
    response = client.post("/inventory/SKU-001/receive", json={"quantity": 1, **changes})
    assert response.status_code == 409
    assert response.json()["detail"].startswith(detail)
    assert row(client, "SKU-001") == WIDGET


def test_the_same_price_and_name_are_accepted(client):
    body = {"quantity": 1, "name": "Widget", "unit_price": 1000}
    response = client.post("/inventory/SKU-001/receive", json=body)
    assert response.json()["total_received"] == 26


def test_receive_needs_the_token_when_one_is_set(client, monkeypatch):
    monkeypatch.setenv("FLOWFORGE_API_TOKEN", "s3cret")
    get_settings.cache_clear()
    denied = client.post("/inventory/SKU-001/receive", json={"quantity": 40})
    assert denied.status_code == 401
    wrong = client.post(
        "/inventory/SKU-001/receive",
        json={"quantity": 40},
        headers={"Authorization": "Bearer guess"},
    )
    assert wrong.status_code == 401
    authorized = {"Authorization": "Bearer s3cret"}
    assert client.get("/inventory", headers=authorized).json()[0] == WIDGET
    allowed = client.post("/inventory/SKU-001/receive", json={"quantity": 40}, headers=authorized)
    assert allowed.json()["total_received"] == 65


@pytest.mark.parametrize("quantity", [True, False, "2", 2.0, 1.5, [2], None])
def test_an_order_quantity_must_be_a_json_integer(client, quantity):
    before = client.get("/inventory").json()
    response = client.post("/orders", json=order_body(quantity=quantity))
    assert response.status_code == 422
    assert [e["loc"] for e in response.json()["detail"]] == [["body", "quantity"]]
    assert client.get("/orders").json() == []
    assert client.get("/inventory").json() == before
