"""GET /engine/snapshot and GET /warehouse answer a page at a time, newest first."""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

import pytest

from bench.factory import fill_orders
from storage.db import session_scope
from storage.snapshot import snapshot

ORDERS = 250


@pytest.fixture
def filled(database) -> dict[str, Any]:
    """ORDERS bulk orders; the whole snapshot as the CLI prints it."""
    fill_orders(ORDERS)
    with session_scope(readonly=True) as session:
        return snapshot(session).model_dump(mode="json")


def walk(client, path: str, **params: int) -> list[Any]:
    """Every page of `path`, following the `Link: rel="next"` headers to the last page."""
    pages = []
    response = client.get(path, params=params)
    while True:
        assert response.status_code == 200
        pages.append(response.json())
        if "next" not in response.links:
            return pages
        response = client.get(response.links["next"]["url"])


def test_the_default_snapshot_page_is_the_newest_hundred_orders_and_their_records(filled, client):
    response = client.get("/engine/snapshot")
    page = response.json()
    assert set(page) == {"orders", "inventory", "payments", "warehouse"}
    ids = [order["order_id"] for order in page["orders"]]
    assert ids == [f"bulk-{n:06d}" for n in range(ORDERS - 1, ORDERS - 101, -1)]
    assert page["inventory"] == filled["inventory"]
    assert {p["order_id"] for p in page["payments"]} <= set(ids)
    assert {w["order_id"] for w in page["warehouse"]} <= set(ids)
    assert page["payments"] and page["warehouse"]
    assert response.links["next"]["url"].endswith("/engine/snapshot?limit=100&offset=100")


def test_the_default_warehouse_page_is_the_newest_hundred_records(filled, client):
    response = client.get("/warehouse")
    newest = sorted(filled["warehouse"], key=lambda w: w["order_id"], reverse=True)
    assert response.json() == newest[:100]
    assert response.links["next"]["url"].endswith("/warehouse?limit=100&offset=100")


def test_walking_the_snapshot_yields_every_order_and_record_exactly_once(filled, client):
    pages = walk(client, "/engine/snapshot", limit=70)
    assert len(pages) == math.ceil(ORDERS / 70)
    for key, id_key in (
        ("orders", "order_id"),
        ("payments", "charge_id"),
        ("warehouse", "order_id"),
    ):
        walked = Counter(item[id_key] for page in pages for item in page[key])
        assert walked == Counter(item[id_key] for item in filled[key]), key
        assert set(walked.values()) == {1}, key
    assert all(page["inventory"] == filled["inventory"] for page in pages)


def test_walking_the_warehouse_yields_every_record_exactly_once(filled, client):
    pages = walk(client, "/warehouse", limit=70)
    assert len(pages) == math.ceil(len(filled["warehouse"]) / 70)
    walked = [record for page in pages for record in page]
    assert sorted(walked, key=lambda w: w["order_id"]) == filled["warehouse"]


def test_past_the_last_page_is_empty_and_has_no_next_link(filled, client):
    snapshot_page = client.get("/engine/snapshot", params={"offset": ORDERS})
    assert snapshot_page.json() == {
        "orders": [],
        "inventory": filled["inventory"],
        "payments": [],
        "warehouse": [],
    }
    warehouse_page = client.get("/warehouse", params={"offset": len(filled["warehouse"])})
    assert warehouse_page.json() == []
    for response in (
        snapshot_page,
        warehouse_page,
        client.get("/warehouse", params={"limit": 1000}),
    ):
        assert "link" not in response.headers


@pytest.mark.parametrize("path", ["/engine/snapshot", "/warehouse", "/orders"])
@pytest.mark.parametrize(
    "params", [{"limit": 0}, {"limit": 1001}, {"limit": "ten"}, {"offset": -1}, {"offset": 2**32}]
)
def test_page_parameters_are_validated(client, path, params):
    response = client.get(path, params=params)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["query", next(iter(params))]
