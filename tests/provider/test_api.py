"""The double of Stripe's API from the official SDK's side: every answer parses into the SDK's
typed objects (or its typed errors), with Stripe's idempotency, states and error shapes (and raw
HTTP where the SDK hides the wire)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
import stripe

from flows.prefect_api import free_port
from tests.provider.helpers import API_KEY, AUTH, sdk


def intent(
    client: stripe.StripeClient, key: str, amount: int = 2000, method: str = "pm_card_visa"
) -> stripe.PaymentIntent:
    """An unconfirmed PaymentIntent for order `key`, created under `key:create`."""
    return client.v1.payment_intents.create(
        params={
            "amount": amount,
            "currency": "usd",
            "payment_method": method,
            "metadata": {"order_id": key},
        },
        options={"idempotency_key": f"{key}:create"},
    )


def confirm(client: stripe.StripeClient, intent_id: str, key: str) -> stripe.PaymentIntent:
    return client.v1.payment_intents.confirm(
        intent_id, params={"expand": ["latest_charge"]}, options={"idempotency_key": key}
    )


def test_health_needs_no_key_but_v1_does(provider_url: str) -> None:
    assert httpx.get(f"{provider_url}/health").json() == {"status": "ok"}
    for headers in ({}, {"Authorization": "Bearer sk_test_wrong"}):
        response = httpx.get(f"{provider_url}/v1/payment_intents", headers=headers)
        assert response.status_code == 401
        assert response.json()["error"]["type"] == "invalid_request_error"
    with pytest.raises(stripe.AuthenticationError) as caught:
        sdk(provider_url, "sk_test_wrong").v1.payment_intents.list()
    assert caught.value.http_status == 401 and "sk_test_wrong" not in str(caught.value)


def test_create_then_confirm_charges_once_in_stripes_shapes(
    client: stripe.StripeClient, key: str
) -> None:
    created = intent(client, key)
    assert isinstance(created, stripe.PaymentIntent)
    assert created.id.startswith("pi_") and created.object == "payment_intent"
    assert (created.status, created.amount_received, created.latest_charge) == (
        "requires_confirmation",
        0,
        None,
    )
    assert created.metadata["order_id"] == key and created.currency == "usd"
    assert intent(client, key).id == created.id  # the same key and parameters: the same intent

    paid = confirm(client, created.id, key)
    assert (paid.status, paid.amount_received) == ("succeeded", 2000)
    charge = paid.latest_charge
    assert isinstance(charge, stripe.Charge) and charge.id.startswith("ch_")
    assert (charge.amount, charge.refunded, charge.payment_intent) == (2000, False, created.id)
    again = confirm(client, created.id, key)  # the stored answer, not a second charge
    assert (again.id, again.latest_charge.id) == (paid.id, charge.id)
    fetched = client.v1.payment_intents.retrieve(created.id)
    assert (fetched.status, fetched.latest_charge) == ("succeeded", charge.id)


def test_a_token_becomes_a_payment_method(client: stripe.StripeClient, key: str) -> None:
    method = client.v1.payment_methods.create(
        params={"type": "card", "card": {"token": "tok_visa"}}
    )
    assert isinstance(method, stripe.PaymentMethod) and method.id.startswith("pm_")
    assert (method.card.brand, method.card.last4) == ("visa", "4242")
    assert confirm(client, intent(client, key, method=method.id).id, key).status == "succeeded"
    with pytest.raises(stripe.InvalidRequestError) as caught:
        client.v1.payment_methods.create(params={"type": "card", "card": {"token": "tok_nope"}})
    assert (caught.value.code, caught.value.param) == ("resource_missing", "card[token]")


def test_same_key_other_parameters_is_an_idempotency_error(
    client: stripe.StripeClient, key: str
) -> None:
    created = intent(client, key, amount=100)
    with pytest.raises(stripe.IdempotencyError) as caught:
        intent(client, key, amount=101)
    assert caught.value.http_status == 400
    assert "same parameters" in caught.value.user_message
    confirm(client, created.id, key)
    other = intent(client, f"{key}-other")
    with pytest.raises(stripe.IdempotencyError):  # the confirmation's key, on another intent
        confirm(client, other.id, key)
    assert client.v1.payment_intents.retrieve(other.id).status == "requires_confirmation"


@pytest.mark.parametrize(
    ("method", "code", "decline_code"),
    [
        ("pm_card_chargeDeclined", "card_declined", "generic_decline"),
        ("pm_card_chargeDeclinedInsufficientFunds", "card_declined", "insufficient_funds"),
        ("pm_card_chargeDeclinedExpiredCard", "expired_card", None),
        ("tok_chargeDeclined", "card_declined", "generic_decline"),
        ("tok_declined_insufficient_funds", "card_declined", "insufficient_funds"),
    ],
)
def test_declines_are_card_errors_and_answered_the_same_again(
    client: stripe.StripeClient, key: str, method: str, code: str, decline_code: str | None
) -> None:
    if method.startswith("tok_"):
        method = client.v1.payment_methods.create(
            params={"type": "card", "card": {"token": method}}
        ).id
    created = intent(client, key, method=method)
    for _ in range(2):
        with pytest.raises(stripe.CardError) as caught:
            confirm(client, created.id, key)
        error = caught.value
        assert (error.http_status, error.code, error.error.decline_code) == (
            402,
            code,
            decline_code,
        )
        assert isinstance(error.error.payment_intent, stripe.PaymentIntent)
        assert error.error.payment_intent.status == "requires_payment_method"
    declined = client.v1.payment_intents.retrieve(created.id)
    assert (declined.status, declined.latest_charge, declined.amount_received) == (
        "requires_payment_method",
        None,
        0,
    )
    assert declined.last_payment_error.code == code


def test_refund_is_idempotent_and_refunds_once(client: stripe.StripeClient, key: str) -> None:
    paid = confirm(client, intent(client, key, amount=900).id, key)
    refund = client.v1.refunds.create(
        params={"payment_intent": paid.id}, options={"idempotency_key": f"{key}:refund"}
    )
    assert isinstance(refund, stripe.Refund) and refund.id.startswith("re_")
    assert (refund.amount, refund.status, refund.payment_intent) == (900, "succeeded", paid.id)
    again = client.v1.refunds.create(
        params={"payment_intent": paid.id}, options={"idempotency_key": f"{key}:refund"}
    )
    assert again.id == refund.id
    charge = client.v1.payment_intents.retrieve(paid.id, params={"expand": ["latest_charge"]})
    assert (charge.latest_charge.refunded, charge.latest_charge.amount_refunded) == (True, 900)
    with pytest.raises(stripe.InvalidRequestError) as caught:
        client.v1.refunds.create(
            params={"payment_intent": paid.id}, options={"idempotency_key": f"{key}:other"}
        )
    assert caught.value.code == "charge_already_refunded"
    listed = client.v1.refunds.list(params={"payment_intent": paid.id})
    assert isinstance(listed, stripe.ListObject) and [r.id for r in listed.data] == [refund.id]


def test_cancel_is_the_fence_of_an_intent_that_has_not_charged(
    client: stripe.StripeClient, key: str
) -> None:
    created = intent(client, key)
    canceled = client.v1.payment_intents.cancel(created.id, options={"idempotency_key": key})
    assert (canceled.status, canceled.cancellation_reason) == ("canceled", None)
    with pytest.raises(stripe.InvalidRequestError) as caught:
        confirm(client, created.id, f"{key}:confirm")
    assert caught.value.code == "payment_intent_unexpected_state"
    paid = confirm(client, intent(client, f"{key}-2").id, f"{key}-2")
    with pytest.raises(stripe.InvalidRequestError) as caught:
        client.v1.payment_intents.cancel(paid.id)
    assert caught.value.code == "payment_intent_unexpected_state"
    with pytest.raises(stripe.InvalidRequestError) as caught:
        client.v1.refunds.create(params={"payment_intent": created.id})
    assert "does not have a successful charge" in caught.value.user_message


def test_unknown_objects_are_resource_missing(client: stripe.StripeClient) -> None:
    """404 for the object a URL names, 400 for one a parameter names."""
    for call, status in (
        (lambda: client.v1.payment_intents.retrieve("pi_missing"), 404),
        (lambda: client.v1.payment_intents.confirm("pi_missing"), 404),
        (lambda: client.v1.refunds.create(params={"payment_intent": "pi_missing"}), 400),
        (lambda: intent(client, "k-missing", method="pm_missing"), 400),
    ):
        with pytest.raises(stripe.InvalidRequestError) as caught:
            call()
        assert (caught.value.http_status, caught.value.code) == (status, "resource_missing")


def test_bad_requests_are_400_naming_the_parameter(
    client: stripe.StripeClient, provider_url: str
) -> None:
    cases = [
        ({"amount": "5.5", "currency": "usd"}, "amount"),
        ({"amount": -5, "currency": "usd"}, "amount"),
        ({"amount": 10**12, "currency": "usd"}, "amount"),
        ({"amount": 5, "currency": "dollars"}, "currency"),
        ({"amount": 5, "currency": "usd", "colour": "red"}, "colour"),
        ({"amount": 5, "currency": "usd", "metadata": {"a": {"b": "c"}}}, "metadata[a]"),
    ]
    for params, param in cases:
        with pytest.raises(stripe.InvalidRequestError) as caught:
            client.v1.payment_intents.create(params=params)
        assert (caught.value.http_status, caught.value.param) == (400, param), params
        assert "\n" not in caught.value.user_message
    unknown = httpx.get(f"{provider_url}/v1/customers", headers=AUTH)
    assert unknown.status_code == 404
    assert unknown.json()["error"]["message"] == "Unrecognized request URL (GET: /v1/customers)."


def test_intents_are_listed_newest_first_page_after_page(
    client: stripe.StripeClient, key: str
) -> None:
    made = [intent(client, f"{key}-{n}", amount=n + 1).id for n in range(105)]
    page = client.v1.payment_intents.list(params={"limit": 2, "starting_after": made[-2]})
    assert isinstance(page, stripe.ListObject) and page.url == "/v1/payment_intents"
    assert [p.id for p in page.data] == [made[-3], made[-4]] and page.has_more is True
    listed = [
        p.id for p in client.v1.payment_intents.list(params={"limit": 100}).auto_paging_iter()
    ]
    assert listed[:105] == made[::-1] and len(listed) == len(set(listed))


def test_concurrent_identical_creates_make_one_intent(
    client: stripe.StripeClient, key: str
) -> None:
    def create(_: int) -> str:
        try:
            return intent(client, key).id
        except stripe.APIError as exc:  # 409: the first request with the key is still running
            assert exc.http_status == 409
            return ""

    with ThreadPoolExecutor(max_workers=20) as pool:
        ids = set(pool.map(create, range(20))) - {""}
    assert len(ids) == 1


def test_a_closed_port_is_a_connection_error_before_sending(key: str) -> None:
    with pytest.raises(stripe.APIConnectionError) as caught:
        sdk(f"http://127.0.0.1:{free_port()}").v1.payment_intents.list()
    assert isinstance(caught.value.__cause__, httpx.ConnectError)
    assert API_KEY not in str(caught.value)
