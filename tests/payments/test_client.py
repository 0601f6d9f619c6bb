"""FlowForge's Stripe client (payments/client.py) against the double: Stripe's answers in
FlowForge's words — each SDK exception as the error that decides what the step does."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from flows.prefect_api import free_port
from payments.client import (
    AlreadyRefunded,
    Declined,
    InDoubt,
    KeyReused,
    Rejected,
    StripeGateway,
    UnexpectedState,
    Unreachable,
)
from tests.provider.helpers import API_KEY, Running, running_provider, set_faults

CONFIRM = "payment_intents.confirm"


@pytest.fixture(scope="module")
def double(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    with running_provider(tmp_path_factory.mktemp("double") / "p.sqlite3") as running:
        yield running


@pytest.fixture
def gateway(double: Running) -> Iterator[StripeGateway]:
    client = StripeGateway(API_KEY, double.url, read_timeout=0.5)
    yield client
    set_faults(double.url, {})
    client.close()


@pytest.fixture
def order() -> str:
    return f"o-{uuid.uuid4().hex[:10]}"


def create(gateway: StripeGateway, order: str, method: str = "tok_visa", amount: int = 1500):
    return gateway.create_intent(
        order_id=order,
        customer_id="cust-1",
        amount=amount,
        payment_method=method,
        idempotency_key=f"{order}:payment:create",
    )


@pytest.mark.e2e
def test_an_order_charged_and_refunded_in_flowforges_words(gateway: StripeGateway, order: str):
    made = create(gateway, order)
    assert (made.order_id, made.customer_id, made.payment_method) == (order, "cust-1", "tok_visa")
    assert (made.amount, made.currency, made.status, made.refunded) == (
        1500,
        "usd",
        "requires_confirmation",
        False,
    )
    assert create(gateway, order) == made  # asking again: the same intent, the same method
    paid = gateway.confirm(made.id, idempotency_key=f"{order}:payment")
    assert paid.succeeded and not paid.refunded
    gateway.refund(made.id, idempotency_key=f"{order}:refund")
    assert gateway.retrieve(made.id).refunded
    with pytest.raises(AlreadyRefunded):
        gateway.refund(made.id, idempotency_key=f"{order}:refund-again")
    assert made.id in [intent.id for intent in gateway.intents()]
    assert gateway.retrieve("pi_unknown") is None


@pytest.mark.e2e
def test_each_failure_is_the_error_that_decides_the_step(
    gateway: StripeGateway, double: Running, order: str
):
    declined = create(gateway, f"{order}-d", method="pm_card_chargeDeclined")
    with pytest.raises(Declined) as caught:
        gateway.confirm(declined.id, idempotency_key=f"{order}-d:payment")
    assert caught.value.status_code == 402 and caught.value.code == "card_declined"

    made = create(gateway, order)
    with pytest.raises(KeyReused) as reused:  # the same key, other parameters
        create(gateway, order, amount=1501)
    assert "same parameters" in str(reused.value)
    for kind, status in (("error", 503), ("rate_limit", 429)):
        set_faults(double.url, {"rules": [{"kind": kind, "on": CONFIRM, "times": 1}]})
        with pytest.raises(InDoubt) as caught:
            gateway.confirm(made.id, idempotency_key=f"{order}:payment")
        assert caught.value.status_code == status
    set_faults(double.url, {"rules": [{"kind": "drop", "on": CONFIRM, "times": 1}]})
    with pytest.raises(InDoubt, match="outcome unknown: RemoteProtocolError"):
        gateway.confirm(made.id, idempotency_key=f"{order}:payment")
    assert gateway.retrieve(made.id).succeeded
    with pytest.raises(UnexpectedState):
        gateway.cancel(made.id, idempotency_key=f"{order}:cancel")
    with pytest.raises(Rejected) as caught:
        create(gateway, f"{order}-x", method="pm_nonexistent")
    assert caught.value.status_code == 400 and type(caught.value) is Rejected
    assert "No such PaymentMethod: 'pm_nonexistent'" in str(caught.value)


@pytest.mark.e2e
def test_nothing_listening_is_unreachable_and_a_wrong_key_rejected(double: Running, order: str):
    with pytest.raises(Unreachable, match="Stripe unreachable: ConnectError"):
        StripeGateway(API_KEY, f"http://127.0.0.1:{free_port()}").retrieve("pi_x")
    with pytest.raises(Rejected) as caught:
        StripeGateway("sk_test_wrong", double.url).retrieve("pi_x")
    assert caught.value.status_code == 401 and "sk_test_wrong" not in str(caught.value)
