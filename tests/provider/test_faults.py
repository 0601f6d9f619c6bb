"""The double's fault switches, seen from the official SDK: injected 503s and 429s, dropped
connections, slow answers, stalled requests (their key in flight), latency."""

from __future__ import annotations

import json
import socket
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
import stripe

from tests.provider.helpers import API_KEY, AUTH, Running, running_provider, sdk, set_faults
from tests.provider.test_api import confirm, intent


def test_error_is_a_503_and_changes_nothing(
    client: stripe.StripeClient, provider_url: str, key: str
) -> None:
    created = intent(client, key)
    set_faults(provider_url, {"rules": [{"kind": "error", "on": "payment_intents.confirm"}]})
    with pytest.raises(stripe.APIError) as caught:
        confirm(client, created.id, key)
    assert caught.value.http_status == 503 and "injected" in str(caught.value)
    assert client.v1.payment_intents.retrieve(created.id).status == "requires_confirmation"


def test_rate_limit_is_a_429_and_changes_nothing(
    client: stripe.StripeClient, provider_url: str, key: str
) -> None:
    created = intent(client, key)
    rule = {"kind": "rate_limit", "on": "payment_intents.confirm", "times": 1}
    set_faults(provider_url, {"rules": [rule]})
    with pytest.raises(stripe.RateLimitError) as caught:
        confirm(client, created.id, key)
    assert caught.value.http_status == 429
    assert confirm(client, created.id, key).status == "succeeded"  # the key was never used


def test_drop_confirms_then_drops(client: stripe.StripeClient, provider_url: str, key: str) -> None:
    created = intent(client, key)
    rule = {"kind": "drop", "on": "payment_intents.confirm", "times": 1}
    set_faults(provider_url, {"rules": [rule]})
    with pytest.raises(stripe.APIConnectionError) as caught:
        confirm(client, created.id, key)
    assert isinstance(caught.value.__cause__, httpx.RemoteProtocolError)
    found = client.v1.payment_intents.retrieve(created.id)
    assert found.status == "succeeded"
    assert confirm(client, created.id, key).latest_charge.id == found.latest_charge


def test_drop_sends_no_bytes_at_all(
    client: stripe.StripeClient, provider: Running, key: str
) -> None:
    set_faults(provider.url, {"rules": [{"kind": "drop", "on": "payment_intents.create"}]})
    body = f"amount=5&currency=usd&metadata[order_id]={key}"
    request = (
        f"POST /v1/payment_intents HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {API_KEY}\r\n"
        f"Idempotency-Key: {key}\r\nContent-Type: application/x-www-form-urlencoded\r\n"
        f"Content-Length: {len(body)}\r\n\r\n{body}"
    )
    url = urlsplit(provider.url)
    with socket.create_connection((url.hostname, url.port), timeout=5) as sock:
        sock.sendall(request.encode())
        try:
            received = sock.recv(65536)
        except ConnectionResetError:
            received = b""
    assert received == b""  # not a 500: nothing but the end of the connection
    listed = client.v1.payment_intents.list(params={"limit": 1}).data
    assert listed[0].metadata["order_id"] == key
    log = provider.log.read_text()
    assert "ASGI callable" not in log and "Traceback" not in log, log


def test_drop_of_a_refund(client: stripe.StripeClient, provider_url: str, key: str) -> None:
    paid = confirm(client, intent(client, key).id, key)
    set_faults(provider_url, {"rules": [{"kind": "drop", "on": "refunds.create"}]})
    with pytest.raises(stripe.APIConnectionError):
        client.v1.refunds.create(
            params={"payment_intent": paid.id}, options={"idempotency_key": f"{key}:refund"}
        )
    refunded = client.v1.payment_intents.retrieve(paid.id, params={"expand": ["latest_charge"]})
    assert refunded.latest_charge.refunded is True


def test_slow_answers_after_the_read_timeout(provider_url: str, key: str) -> None:
    impatient = sdk(provider_url, read_timeout=0.3)
    created = intent(impatient, key)
    rule = {"kind": "slow", "on": "payment_intents.confirm", "keys": key}
    set_faults(provider_url, {"slow_seconds": 1.0, "rules": [rule]})
    try:
        started = time.monotonic()
        with pytest.raises(stripe.APIConnectionError) as caught:
            confirm(impatient, created.id, key)
        assert isinstance(caught.value.__cause__, httpx.ReadTimeout)
        assert time.monotonic() - started < 0.9
        assert impatient.v1.payment_intents.retrieve(created.id).status == "succeeded"
    finally:
        set_faults(provider_url, {})


def test_a_stalled_request_holds_its_key_in_flight(
    client: stripe.StripeClient, provider_url: str, key: str
) -> None:
    """While the first request with a key is still running, the same key is 409; afterwards
    the stored answer."""
    created = intent(client, key)
    rule = {"kind": "stall", "on": "payment_intents.confirm", "times": 1}
    set_faults(provider_url, {"slow_seconds": 1.0, "rules": [rule]})
    answers: list[str] = []
    first = threading.Thread(target=lambda: answers.append(confirm(client, created.id, key).status))
    first.start()
    time.sleep(0.3)
    with pytest.raises(stripe.APIError) as caught:
        confirm(client, created.id, key)
    assert caught.value.http_status == 409
    assert caught.value.error.code == "idempotency_key_in_use"
    first.join(10)
    assert answers == ["succeeded"]
    assert confirm(client, created.id, key).status == "succeeded"


def test_times_counts_the_first_n_matching(
    client: stripe.StripeClient, provider_url: str, key: str
) -> None:
    rule = {"kind": "error", "on": "payment_intents.create", "times": 2, "keys": f"{key}:create"}
    set_faults(provider_url, {"rules": [rule]})
    for _ in range(2):
        with pytest.raises(stripe.APIError):
            intent(client, key)
    assert intent(client, key).metadata["order_id"] == key
    assert intent(client, f"{key}-other").metadata["order_id"] == f"{key}-other"  # no match
    remaining = httpx.get(f"{provider_url}/v1/test/faults", headers=AUTH).json()
    assert remaining["rules"][0]["remaining"] == 0


def test_a_rule_on_refunds_leaves_intents_alone(
    client: stripe.StripeClient, provider_url: str, key: str
) -> None:
    set_faults(provider_url, {"rules": [{"kind": "error", "on": "refunds.create"}]})
    paid = confirm(client, intent(client, key).id, key)
    with pytest.raises(stripe.APIError):
        client.v1.refunds.create(params={"payment_intent": paid.id})
    assert client.v1.refunds.list(params={"payment_intent": paid.id}).data == []


def test_probability_zero_never_fires(
    client: stripe.StripeClient, provider_url: str, key: str
) -> None:
    rule = {"kind": "error", "on": "payment_intents.create", "probability": 0}
    set_faults(provider_url, {"seed": 7, "rules": [rule]})
    assert intent(client, key).metadata["order_id"] == key


def test_latency_delays_every_request(
    client: stripe.StripeClient, provider_url: str, key: str
) -> None:
    created = intent(client, key)
    started = time.monotonic()
    client.v1.payment_intents.retrieve(created.id)
    fast = time.monotonic() - started
    set_faults(provider_url, {"latency_ms": 400})
    started = time.monotonic()
    client.v1.payment_intents.retrieve(created.id)
    confirm(client, created.id, key)
    assert time.monotonic() - started >= 0.8 > fast


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ('{"slow_seconds": 1e309}', "slow_seconds: Input should be a finite number"),
        ('{"slow_seconds": NaN}', "slow_seconds: Input should be a finite number"),
        ('{"slow_seconds": -1}', "slow_seconds: Input should be greater than or equal to 0"),
        ('{"slow_seconds": 60.5}', "slow_seconds: Input should be less than or equal to 60"),
        ('{"latency_ms": 1e400}', "latency_ms: Input should be a finite number"),
        ('{"latency_ms": -1}', "latency_ms: Input should be greater than or equal to 0"),
        ('{"latency_ms": 60001}', "latency_ms: Input should be less than or equal to 60000"),
        ('{"latency_ms": 1' + "0" * 40 + "}", "latency_ms: Input should be less than or equal"),
        ('{"rules": [{"kind": "drop", "on": "charges"}]}', "rules[0][on]: Input should be"),
    ],
)
def test_faults_are_bounded(
    client: stripe.StripeClient, provider_url: str, body: str, message: str
):
    set_faults(provider_url, {"slow_seconds": 60, "latency_ms": 0})  # the largest allowed
    response = httpx.put(
        f"{provider_url}/v1/test/faults",
        content=body,
        headers={**AUTH, "Content-Type": "application/json"},
    )
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error" and error["message"].startswith(message)
    config = httpx.get(f"{provider_url}/v1/test/faults", headers=AUTH).json()
    assert (config["slow_seconds"], config["latency_ms"]) == (60, 0)  # unchanged


@pytest.mark.e2e
def test_faults_from_the_environment(tmp_path: Path, key: str) -> None:
    faults = json.dumps({"rules": [{"kind": "error", "on": "payment_intents.create", "times": 1}]})
    with running_provider(tmp_path / "p.sqlite3", PROVIDER_FAULTS=faults) as running:
        client = sdk(running.url)
        with pytest.raises(stripe.APIError):
            intent(client, key)
        assert intent(client, key).metadata["order_id"] == key
