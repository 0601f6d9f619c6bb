"""Carts over HTTP: `lines` in the body, the single-product shape as one line, and bad carts
refused with a 422 naming the line and the field (nothing recorded)."""

from __future__ import annotations

import pytest

from storage.db import session_scope
from storage.models import MAX_LINES
from storage.snapshot import snapshot

CART = {
    "lines": [{"product_id": "SKU-001", "quantity": 2}, {"product_id": "SKU-003", "quantity": 1}],
    "customer_id": "cust-42",
    "payment_method": "tok_visa",
}


def line(n: int) -> dict[str, object]:
    return {"product_id": f"P-{n:03d}", "quantity": 1}


def orders_recorded() -> int:
    with session_scope() as session:
        return len(snapshot(session).orders)


def test_a_cart_is_recorded_with_its_lines_and_the_single_product_fields(client):
    body = client.post("/orders", json=CART | {"order_id": "cart-1"}).json()
    status = client.get(f"/orders/{body['order_id']}/status").json()
    assert status["lines"] == CART["lines"]
    assert (status["product_id"], status["quantity"], status["amount"]) == ("SKU-001", 3, 3000)
    listed = client.get("/orders").json()
    assert [order["lines"] for order in listed] == [CART["lines"]]


def test_the_single_product_shape_is_a_one_line_cart_and_a_retry_of_it(client):
    seed = {"product_id": "SKU-003", "quantity": 2, "customer_id": "c", "payment_method": "t"}
    first = client.post("/orders", json=seed | {"order_id": "one"})
    as_cart = {k: v for k, v in seed.items() if k not in ("product_id", "quantity")}
    again = client.post(
        "/orders",
        json=as_cart | {"order_id": "one", "lines": [{"product_id": "SKU-003", "quantity": 2}]},
    )
    assert (first.status_code, again.status_code) == (200, 200)
    assert again.json()["created"] is False
    status = client.get("/orders/one/status").json()
    assert status["lines"] == [{"product_id": "SKU-003", "quantity": 2}]
    assert (status["product_id"], status["quantity"]) == ("SKU-003", 2)


def test_another_cart_under_the_same_order_id_is_409_naming_the_line(client):
    client.post("/orders", json=CART | {"order_id": "cart-2"})
    other = [CART["lines"][0], {"product_id": "SKU-003", "quantity": 5}]
    response = client.post("/orders", json=CART | {"order_id": "cart-2", "lines": other})
    assert response.status_code == 409
    assert "line 2 quantity 1, not 5" in response.json()["detail"]


@pytest.mark.parametrize(
    ("lines", "loc", "says"),
    [
        ([], ["body", "lines"], "at least 1 item"),
        ([line(n) for n in range(MAX_LINES + 1)], ["body", "lines"], "at most 100 items"),
        (
            [line(1), line(2), line(1)],
            ["body", "lines"],
            "line 3: product_id 'P-001' is already line 1",
        ),
        (
            [line(1), {"product_id": "P-002", "quantity": 0}],
            ["body", "lines", 1, "quantity"],
            "greater than or equal to 1",
        ),
        ([{"product_id": "P-002", "quantity": True}], ["body", "lines", 0, "quantity"], "integer"),
        ([{"product_id": " ", "quantity": 1}], ["body", "lines", 0, "product_id"], "at least 1"),
        (
            [{"product_id": "P-1", "quantity": 1, "colour": "red"}],
            ["body", "lines", 0, "colour"],
            "",
        ),
    ],
)
def test_a_bad_cart_is_422_naming_the_line_and_the_field(client, lines, loc, says):
    response = client.post("/orders", json=CART | {"lines": lines})
    assert response.status_code == 422
    errors = response.json()["detail"]
    assert any(e["loc"] == loc and says in e["msg"] for e in errors), errors
    assert orders_recorded() == 0


def test_both_shapes_at_once_or_neither_is_422(client):
    both = client.post("/orders", json=CART | {"product_id": "SKU-001", "quantity": 1})
    neither = client.post("/orders", json={"customer_id": "c", "payment_method": "t"})
    assert both.status_code == neither.status_code == 422
    assert "not both" in both.json()["detail"][0]["msg"]
    assert {e["loc"][-1] for e in neither.json()["detail"]} == {"product_id", "quantity"}
    assert orders_recorded() == 0


def test_the_openapi_schema_documents_both_shapes(client):
    schema = client.get("/openapi.json").json()["components"]["schemas"]
    properties = schema["OrderCreate"]["properties"]
    assert {"lines", "product_id", "quantity"} <= set(properties)
    assert schema["OrderLine"]["required"] == ["product_id", "quantity"]
    assert (properties["lines"]["minItems"], properties["lines"]["maxItems"]) == (1, MAX_LINES)
    assert "lines" not in schema["OrderCreate"]["required"]
    assert schema["OrderCreate"]["oneOf"] == [
        {"required": ["lines"]},
        {"required": ["product_id", "quantity"]},
    ]
