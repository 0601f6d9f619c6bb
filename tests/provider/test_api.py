"""The provider's API through its client (and raw HTTP where the client hides the wire)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from flows.prefect_api import free_port
from provider.client import (
    AlreadyRefunded,
    Declined,
    ProviderClient,
    Rejected,
    Unreachable,
)
from tests.provider.helpers import API_KEY

AUTH = {"Authorization": f"Bearer {API_KEY}"}


def test_health_needs_no_key_but_v1_does(provider_url: str) -> None:
    assert httpx.get(f"{provider_url}/health").json() == {"status": "ok"}
    for headers in ({}, {"Authorization": "Bearer sk_wrong"}):
        response = httpx.get(f"{provider_url}/v1/charges", headers=headers)
        assert response.status_code == 401
        assert response.json()["error"]["type"] == "authentication_error"
    with ProviderClient(provider_url, "sk_wrong") as wrong, pytest.raises(Rejected) as caught:
        wrong.find_charge("anything")
    assert caught.value.status_code == 401


def test_same_key_same_body_is_the_same_charge(client: ProviderClient, key: str) -> None:
    first = client.charge(idempotency_key=key, amount=1250, payment_method="pm_card", order_id=key)
    again = client.charge(idempotency_key=key, amount=1250, payment_method="pm_card", order_id=key)
    assert again == first
    assert (first.amount, first.status, first.order_id, first.refunded) == (
        1250,
        "succeeded",
        key,
        False,
    )
    assert first.id.startswith("ch_")
    assert [charge.id for charge in client.charges(order_id=key)] == [first.id]
    assert client.get_charge(first.id) == first


def test_same_key_other_body_is_409(client: ProviderClient, key: str) -> None:
    client.charge(idempotency_key=key, amount=100, payment_method="pm_card", order_id=key)
    with pytest.raises(Rejected) as caught:
        client.charge(idempotency_key=key, amount=101, payment_method="pm_card", order_id=key)
    assert caught.value.status_code == 409
    assert "same parameters" in str(caught.value)
    assert [charge.amount for charge in client.charges(order_id=key)] == [100]


def test_decline_stores_nothing_and_stays_declined(client: ProviderClient, key: str) -> None:
    for _ in range(2):
        with pytest.raises(Declined) as caught:
            client.charge(
                idempotency_key=key, amount=500, payment_method="tok_declined_x", order_id=key
            )
        assert caught.value.status_code == 402 and caught.value.code == "card_declined"
    assert client.find_charge(key) is None
    assert list(client.charges(order_id=key)) == []


def test_refund_is_idempotent_and_refunds_once(client: ProviderClient, key: str) -> None:
    charge = client.charge(idempotency_key=key, amount=900, payment_method="pm", order_id=key)
    refund = client.refund(charge_id=charge.id, idempotency_key=f"{key}-r")
    assert client.refund(charge_id=charge.id, idempotency_key=f"{key}-r") == refund
    assert (refund.charge, refund.amount, refund.status) == (charge.id, 900, "succeeded")
    refunded = client.get_charge(charge.id)
    assert refunded is not None
    assert (refunded.status, refunded.refunded, refunded.amount_refunded) == ("refunded", True, 900)
    assert client.refunds(charge.id) == [refund]
    with pytest.raises(AlreadyRefunded):
        client.refund(charge_id=charge.id, idempotency_key=f"{key}-other")
    assert client.refunds(charge.id) == [refund]


def test_refund_key_reused_for_another_charge_is_409(client: ProviderClient, key: str) -> None:
    one = client.charge(idempotency_key=f"{key}-1", amount=1, payment_method="pm", order_id=key)
    two = client.charge(idempotency_key=f"{key}-2", amount=2, payment_method="pm", order_id=key)
    client.refund(charge_id=one.id, idempotency_key=f"{key}-r")
    with pytest.raises(Rejected) as caught:
        client.refund(charge_id=two.id, idempotency_key=f"{key}-r")
    assert caught.value.status_code == 409
    assert client.refunds(two.id) == []


def test_unknown_charge(client: ProviderClient, key: str) -> None:
    with pytest.raises(Rejected) as caught:
        client.refund(charge_id="ch_missing", idempotency_key=key)
    assert caught.value.status_code == 404 and caught.value.code == "resource_missing"
    assert client.get_charge("ch_missing") is None


def test_find_charge_by_key(client: ProviderClient, key: str) -> None:
    assert client.find_charge(key) is None
    charge = client.charge(idempotency_key=key, amount=42, payment_method="pm", order_id=key)
    assert client.find_charge(key) == charge


def test_bad_requests_are_400_in_the_error_shape(provider_url: str, key: str) -> None:
    bodies = [{"amount": -5, "payment_method": "pm"}, {"amount": 5}, {"amount": 5.5}]
    for body in bodies:
        response = httpx.post(
            f"{provider_url}/v1/charges", json=body, headers={**AUTH, "Idempotency-Key": key}
        )
        assert response.status_code == 400, body
        error = response.json()["error"]
        assert error["type"] == "invalid_request_error" and "\n" not in error["message"]
    response = httpx.post(
        f"{provider_url}/v1/charges", json={"amount": 5, "payment_method": "pm"}, headers=AUTH
    )
    assert response.status_code == 400
    assert "Idempotency-Key" in response.json()["error"]["message"]


def test_amounts_past_what_the_database_holds_are_400(
    client: ProviderClient, provider_url: str, key: str
) -> None:
    biggest = 2**63 - 1  # SQLite's largest INTEGER
    made = client.charge(idempotency_key=key, amount=biggest, payment_method="pm", order_id=key)
    assert client.get_charge(made.id) == made and made.amount == biggest
    requests = [
        ("charges", {"amount": 2**63, "payment_method": "pm"}),
        ("charges", {"amount": 10**30, "payment_method": "pm"}),
        ("refunds", {"charge": made.id, "amount": 2**63}),
    ]
    for path, body in requests:
        response = httpx.post(
            f"{provider_url}/v1/{path}", json=body, headers={**AUTH, "Idempotency-Key": f"{key}-x"}
        )
        assert response.status_code == 400, (body, response.text)
        assert response.json()["error"] == {
            "type": "invalid_request_error",
            "message": f"amount: Input should be less than or equal to {biggest}",
        }
    assert client.find_charge(f"{key}-x") is None and client.refunds(made.id) == []


def test_charges_pages_past_100(client: ProviderClient, provider_url: str, key: str) -> None:
    made = [
        client.charge(idempotency_key=f"{key}-{n}", amount=n + 1, payment_method="pm", order_id=key)
        for n in range(105)
    ]
    assert [charge.id for charge in client.charges(order_id=key)] == [c.id for c in made]
    page = httpx.get(
        f"{provider_url}/v1/charges",
        params={"order_id": key, "limit": 2, "starting_after": made[1].id},
        headers=AUTH,
    ).json()
    assert [item["id"] for item in page["data"]] == [made[2].id, made[3].id]
    assert page["has_more"] is True
    last = httpx.get(
        f"{provider_url}/v1/charges",
        params={"order_id": key, "limit": 100, "starting_after": made[4].id},
        headers=AUTH,
    ).json()
    assert len(last["data"]) == 100 and last["has_more"] is False
    all_ids = [charge.id for charge in client.charges()]
    assert all_ids[-105:] == [c.id for c in made] and len(all_ids) == len(set(all_ids))


def test_concurrent_identical_charges_make_one(client: ProviderClient, key: str) -> None:
    def charge(_: int) -> str:
        return client.charge(idempotency_key=key, amount=777, payment_method="pm", order_id=key).id

    with ThreadPoolExecutor(max_workers=20) as pool:
        ids = set(pool.map(charge, range(20)))
    assert len(ids) == 1
    assert [c.id for c in client.charges(order_id=key)] == list(ids)


def test_closed_port_is_unreachable(key: str) -> None:
    with ProviderClient(f"http://127.0.0.1:{free_port()}", API_KEY) as client:
        with pytest.raises(Unreachable):
            client.charge(idempotency_key=key, amount=1, payment_method="pm", order_id=key)
        assert client.health() is False
