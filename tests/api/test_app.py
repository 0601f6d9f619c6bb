"""The HTTP API against a real SQLite database, with no Prefect server configured."""

from __future__ import annotations

import pytest

from storage import operations, saga_log
from storage.db import session_scope
from storage.settings import get_settings
from tests.api.helpers import ORDER, order_body


def test_health(client):
    assert client.get("/health").json() == {"status": "ok"}


def test_post_order_records_it_for_the_intake(client):
    response = client.post("/orders", json=ORDER)
    assert response.status_code == 200
    body = response.json()
    assert body["order_id"].startswith("ord_")
    assert body["workflow_id"] == f"order-{body['order_id']}"
    assert body["status"] == "started"
    assert "intake" in body["message"]
    status = client.get(f"/orders/{body['workflow_id']}/status").json()
    assert status["status"] == "pending"
    assert (status["flow_run"], status["task_run"]) == (None, None)
    with session_scope() as session:
        assert saga_log.get_order(session, order_id=body["order_id"]).lease_owner is None
    for key in ("steps_completed", "compensation_triggered", "current_step", "failure_reason"):
        assert key in status
    assert status["events"] == []


def test_client_workflow_id_is_kept_and_a_repeat_is_409(client):
    first = client.post("/orders", json=order_body(workflow_id="wf-1"))
    assert first.json()["workflow_id"] == "wf-1"
    again = client.post("/orders", json=order_body(workflow_id="wf-1"))
    assert again.status_code == 409
    assert "wf-1" in again.json()["detail"]
    by_order_id = client.get(f"/orders/{first.json()['order_id']}/status")
    assert by_order_id.json()["workflow_id"] == "wf-1"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({k: v for k, v in ORDER.items() if k != "quantity"}, "quantity"),
        (order_body(quantity=0), "quantity"),
        (order_body(quantity="two"), "quantity"),
        (order_body(quantity=10**30), "quantity"),
        (order_body(product_id="  "), "product_id"),
        (order_body(customer_id="\x00"), "customer_id"),
        (order_body(payment_method=7), "payment_method"),
        (order_body(workflow_id="has space"), "workflow_id"),
        (order_body(colour="red"), "colour"),
    ],
)
def test_validation_errors_are_422_naming_the_field(client, body, field):
    response = client.post("/orders", json=body)
    assert response.status_code == 422
    assert any(error["loc"][-1] == field for error in response.json()["detail"])


@pytest.mark.parametrize(
    "raw", [b"{not json", b"[1, 2]", b"null", b"", "\ud800".encode("utf-8", "surrogatepass")]
)
def test_malformed_bodies_are_422_not_500(client, raw):
    response = client.post("/orders", content=raw, headers={"Content-Type": "application/json"})
    assert response.status_code == 422


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/orders/nope/status"),
        ("post", "/orders/nope/cancel"),
        ("post", "/orders/nope/retry"),
        ("get", "/payments/ch_nope"),
    ],
)
def test_unknown_ids_are_404(client, method, path):
    assert getattr(client, method)(path).status_code == 404


def test_token_guards_every_endpoint_but_health(client, monkeypatch):
    monkeypatch.setenv("FLOWFORGE_API_TOKEN", "s3cret")
    get_settings.cache_clear()
    assert client.get("/health").status_code == 200
    assert client.get("/inventory").status_code == 401
    wrong = client.get("/inventory", headers={"Authorization": "Bearer guess"})
    assert wrong.status_code == 401
    assert wrong.headers["WWW-Authenticate"] == "Bearer"
    assert client.post("/orders", json={}).status_code == 401
    right = client.get("/inventory", headers={"Authorization": "Bearer s3cret"})
    assert right.status_code == 200


def test_read_endpoints_have_the_seed_shapes(client):
    order_id = client.post("/orders", json=ORDER).json()["order_id"]
    with session_scope() as session:
        charge = operations.charge(
            session,
            order_id=order_id,
            idempotency_key=f"{order_id}:payment",
            amount=2000,
            payment_method="tok_visa",
            customer_id="cust-42",
        )
    inventory = client.get("/inventory").json()
    assert [p["product_id"] for p in inventory] == ["SKU-001", "SKU-002", "SKU-003"]
    assert {"available", "reserved"} <= set(inventory[0])
    payment = client.get(f"/payments/{charge.charge_id}").json()
    assert (payment["amount"], payment["status"], payment["order_id"]) == (
        2000,
        "charged",
        order_id,
    )
    assert client.get("/warehouse").json() == []
    orders = client.get("/orders").json()
    assert [o["order_id"] for o in orders] == [order_id]
    assert set(client.get("/engine/snapshot").json()) == {
        "orders",
        "inventory",
        "payments",
        "warehouse",
    }
    # a charge on an order still queued breaks no invariant (only settled orders must balance)
    assert client.get("/audit").json() == {"clean": True, "problems": []}


def test_orders_paging_is_validated(client):
    assert client.get("/orders", params={"limit": 0}).status_code == 422
    assert client.get("/orders", params={"offset": -1}).status_code == 422


def test_cancel_a_pending_order_flags_it_once_and_a_settled_one_is_409(client):
    order_id = client.post("/orders", json=ORDER).json()["order_id"]
    answers = [client.post(f"/orders/{order_id}/cancel") for _ in range(3)]
    assert [a.status_code for a in answers] == [202, 202, 202]
    assert [(a.json()["status"], a.json()["changed"]) for a in answers] == [
        ("pending", True),
        ("pending", False),
        ("pending", False),
    ]
    assert answers[1].json()["message"] == "cancellation was already requested"
    assert client.get(f"/orders/{order_id}/status").json()["cancel_requested"] is True
    with session_scope() as session:
        saga_log.update_order(session, order_id=order_id, status="cancelled")
    assert client.post(f"/orders/{order_id}/cancel").status_code == 409


def test_retry_reopens_a_needs_attention_order_once(client):
    order_id = client.post("/orders", json=ORDER).json()["order_id"]
    assert client.post(f"/orders/{order_id}/retry").status_code == 409
    with session_scope() as session:
        saga_log.update_order(session, order_id=order_id, status="needs_attention")
    answers = [client.post(f"/orders/{order_id}/retry") for _ in range(3)]
    assert [a.status_code for a in answers] == [202, 202, 202]
    assert [(a.json()["status"], a.json()["changed"]) for a in answers] == [
        ("compensating", True),
        ("compensating", False),
        ("compensating", False),
    ]
    with session_scope() as session:  # queued for the intake: nobody holds it
        claims = saga_log.claim_pending(session, owner="intake", limit=5, lease_seconds=30)
    assert [claim.order_id for claim in claims] == [order_id]


def test_workflow_id_may_not_reuse_another_orders_id(client):
    alice = client.post("/orders", json=ORDER).json()
    bob = client.post("/orders", json=order_body(workflow_id=alice["order_id"]))
    assert bob.status_code == 409
    assert alice["order_id"] in bob.json()["detail"]
    assert len(client.get("/orders").json()) == 1
    status = client.get(f"/orders/{alice['order_id']}/status").json()
    assert status["workflow_id"] == alice["workflow_id"]


@pytest.mark.parametrize("raw", ["1e400", "NaN", "-Infinity"])
def test_non_finite_numbers_are_422_not_500(client, raw):
    template = (
        '{"product_id": "SKU-001", "quantity": QTY, "customer_id": "c", "payment_method": "t"}'
    )
    body = template.replace("QTY", raw)
    response = client.post("/orders", content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "quantity"]


@pytest.mark.parametrize("database", ["sqlite"], indirect=True)
def test_a_removed_database_file_is_503_and_records_nothing(client, db):
    assert client.post("/orders", json=ORDER).status_code == 200
    db.unlink()
    response = client.post("/orders", json=order_body(workflow_id="after-removal"))
    assert response.status_code == 503
    assert "was removed or replaced" in response.json()["detail"]
    assert client.get("/orders").status_code == 503


def test_a_retry_with_the_same_order_id_and_body_is_the_same_order(client):
    first = client.post("/orders", json=order_body(order_id="retried"))
    again = client.post("/orders", json=order_body(order_id="retried"))
    assert (first.status_code, again.status_code) == (200, 200)
    assert (first.json()["created"], again.json()["created"]) == (True, False)
    assert again.json()["status"] == "started"  # still waiting for the intake
    with session_scope() as session:
        saga_log.update_order(session, order_id="retried", status="completed")
    settled = client.post("/orders", json=order_body(order_id="retried"))
    assert settled.status_code == 200
    assert (settled.json()["status"], settled.json()["created"]) == ("completed", False)
    assert "completed" in settled.json()["message"]
    assert len(client.get("/orders").json()) == 1


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"product_id": "SKU-002"}, "product_id 'SKU-001', not 'SKU-002'"),
        ({"quantity": 3}, "quantity 2, not 3"),
        ({"customer_id": "mallory"}, "customer_id 'cust-42', not 'mallory'"),
        ({"payment_method": "tok_mastercard"}, "payment_method 'tok_visa', not 'tok_mastercard'"),
    ],
)
def test_the_same_order_id_with_another_body_is_409_naming_the_difference(client, change, named):
    assert client.post("/orders", json=order_body(order_id="taken")).status_code == 200
    other = client.post("/orders", json=order_body(order_id="taken", **change))
    assert other.status_code == 409
    assert named in other.json()["detail"]
    [order] = client.get("/orders").json()
    assert (order["product_id"], order["quantity"]) == ("SKU-001", 2)


def test_concurrent_posts_of_one_id_with_different_bodies_record_one_order(client):
    from concurrent.futures import ThreadPoolExecutor

    bodies = [order_body(order_id="contested", quantity=q) for q in range(1, 31)]
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda body: client.post("/orders", json=body), bodies))
    codes = sorted(answer.status_code for answer in answers)
    assert codes == [200] + [409] * 29, codes
    [order] = client.get("/orders").json()
    [winner] = [body for body, a in zip(bodies, answers, strict=True) if a.status_code == 200]
    assert order["quantity"] == winner["quantity"]


def test_the_idempotency_key_header_is_the_order_id(client):
    first = client.post("/orders", json=ORDER, headers={"Idempotency-Key": "by-header"})
    assert (first.status_code, first.json()["order_id"]) == (200, "by-header")
    again = client.post("/orders", json=ORDER, headers={"Idempotency-Key": "by-header"})
    assert (again.status_code, again.json()["created"]) == (200, False)
    both = client.post(
        "/orders", json=order_body(order_id="by-header"), headers={"Idempotency-Key": "by-header"}
    )
    assert both.status_code == 200
    differ = client.post(
        "/orders", json=order_body(order_id="other"), headers={"Idempotency-Key": "by-header"}
    )
    assert differ.status_code == 422 and "differ" in differ.json()["detail"]
    bad = client.post("/orders", json=ORDER, headers={"Idempotency-Key": "has space"})
    assert bad.status_code == 422
    assert len(client.get("/orders").json()) == 1
