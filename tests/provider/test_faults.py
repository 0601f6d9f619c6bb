"""The provider's fault switches, seen from the client: errors, drops, slowness, latency."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from provider.client import Charge, InDoubt, ProviderClient
from tests.provider.helpers import API_KEY, Running, running_provider

AUTH = {"Authorization": f"Bearer {API_KEY}"}


def charge(client: ProviderClient, key: str, amount: int = 300) -> Charge:
    return client.charge(idempotency_key=key, amount=amount, payment_method="pm", order_id=key)


def test_error_is_503_in_doubt_and_charges_nothing(client: ProviderClient, key: str) -> None:
    client.set_faults({"rules": [{"kind": "error", "on": "charges", "keys": f"{key}*"}]})
    with pytest.raises(InDoubt) as caught:
        charge(client, key)
    assert caught.value.status_code == 503 and "injected" in str(caught.value)
    assert client.find_charge(key) is None


def test_drop_commits_then_drops(client: ProviderClient, key: str) -> None:
    client.set_faults({"rules": [{"kind": "drop", "on": "charges", "times": 1, "keys": key}]})
    with pytest.raises(InDoubt) as caught:
        charge(client, key)
    assert isinstance(caught.value.__cause__, httpx.RemoteProtocolError)
    found = client.find_charge(key)
    assert found is not None
    assert charge(client, key) == found
    assert list(client.charges(order_id=key)) == [found]


def test_drop_sends_no_bytes_at_all(client: ProviderClient, provider: Running, key: str) -> None:
    client.set_faults({"rules": [{"kind": "drop", "on": "charges", "keys": key}]})
    body = json.dumps({"amount": 5, "payment_method": "pm", "metadata": {"order_id": key}})
    request = (
        f"POST /v1/charges HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {API_KEY}\r\n"
        f"Idempotency-Key: {key}\r\nContent-Type: application/json\r\n"
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
    assert client.find_charge(key) is not None
    log = provider.log.read_text()
    assert "ASGI callable" not in log and "Traceback" not in log, log


def test_drop_of_a_refund(client: ProviderClient, key: str) -> None:
    made = charge(client, key)
    client.set_faults({"rules": [{"kind": "drop", "on": "refunds", "keys": f"{key}-r"}]})
    with pytest.raises(InDoubt):
        client.refund(charge_id=made.id, idempotency_key=f"{key}-r")
    refunded = client.get_charge(made.id)
    assert refunded is not None and refunded.status == "refunded"
    assert len(client.refunds(made.id)) == 1


def test_slow_answers_after_the_read_timeout(provider_url: str, key: str) -> None:
    faults = {"slow_seconds": 1.0, "rules": [{"kind": "slow", "on": "charges", "keys": key}]}
    with ProviderClient(provider_url, API_KEY, read_timeout=0.3) as impatient:
        impatient.set_faults(faults)
        try:
            started = time.monotonic()
            with pytest.raises(InDoubt) as caught:
                charge(impatient, key)
            assert isinstance(caught.value.__cause__, httpx.ReadTimeout)
            assert time.monotonic() - started < 0.9
            assert impatient.find_charge(key) is not None
        finally:
            impatient.set_faults({})


def test_times_counts_the_first_n_matching(
    client: ProviderClient, provider_url: str, key: str
) -> None:
    client.set_faults({"rules": [{"kind": "error", "on": "charges", "times": 2, "keys": key}]})
    for _ in range(2):
        with pytest.raises(InDoubt):
            charge(client, key)
    assert charge(client, key).idempotency_key == key
    assert charge(client, f"{key}-other").idempotency_key == f"{key}-other"  # keys: no match
    remaining = httpx.get(f"{provider_url}/v1/test/faults", headers=AUTH).json()
    assert remaining["rules"][0]["remaining"] == 0


def test_rule_on_refunds_leaves_charges_alone(client: ProviderClient, key: str) -> None:
    client.set_faults({"rules": [{"kind": "error", "on": "refunds"}]})
    made = charge(client, key)
    with pytest.raises(InDoubt):
        client.refund(charge_id=made.id, idempotency_key=f"{key}-r")
    assert client.refunds(made.id) == []


def test_probability_zero_never_fires(client: ProviderClient, key: str) -> None:
    client.set_faults({"seed": 7, "rules": [{"kind": "error", "on": "charges", "probability": 0}]})
    assert charge(client, key).idempotency_key == key


def test_latency_delays_every_charge_request(client: ProviderClient, key: str) -> None:
    charge(client, key)
    started = time.monotonic()
    client.find_charge(key)
    fast = time.monotonic() - started
    client.set_faults({"latency_ms": 400})
    started = time.monotonic()
    client.find_charge(key)
    charge(client, key)
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
    ],
)
def test_slowness_is_bounded(
    client: ProviderClient, provider_url: str, body: str, message: str
) -> None:
    client.set_faults({"slow_seconds": 60, "latency_ms": 0})  # the largest allowed
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
    faults = json.dumps({"rules": [{"kind": "error", "on": "charges", "times": 1}]})
    with (
        running_provider(tmp_path / "p.sqlite3", PROVIDER_FAULTS=faults) as running,
        ProviderClient(running.url, API_KEY) as client,
    ):
        with pytest.raises(InDoubt):
            charge(client, key)
        assert charge(client, key).idempotency_key == key
