"""`bench.post_order`: a connection error, a timeout or a 503 is retried with the same order_id
and body, with a bounded back-off; a 409 on a retry is a bug, never retried."""

from __future__ import annotations

import json
from collections.abc import Callable

import httpx
import pytest

from bench.post_order import GIVE_UP_AFTER_S, MAX_DELAY_S, RetryConflict, post_order

BODY = {"order_id": "bench-00001", "product_id": "SKU-001", "quantity": 1}
STARTED = {"order_id": "bench-00001", "workflow_id": "order-bench-00001", "created": False}


class Clock:
    """A fake clock that `sleep` moves on; records the delays."""

    def __init__(self) -> None:
        self.now = 0.0
        self.delays: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.delays.append(seconds)
        self.now += seconds


def service(
    *answers: Callable[[httpx.Request], httpx.Response],
) -> tuple[httpx.Client, list[dict]]:
    """A client whose n-th request gets the n-th answer (the last one from then on)."""
    bodies: list[dict] = []

    def handle(request: httpx.Request) -> httpx.Response:
        bodies.append(json.loads(request.content))
        return answers[min(len(bodies), len(answers)) - 1](request)

    client = httpx.Client(base_url="http://bench", transport=httpx.MockTransport(handle))
    return client, bodies


def answer(code: int, body: dict | None = None) -> Callable[[httpx.Request], httpx.Response]:
    return lambda _: httpx.Response(code, json=body or {"detail": "no"})


def raise_(error: type[httpx.TransportError]) -> Callable[[httpx.Request], httpx.Response]:
    def handle(request: httpx.Request) -> httpx.Response:
        raise error("down", request=request)

    return handle


def test_retries_connection_errors_timeouts_and_503_with_the_same_body() -> None:
    clock = Clock()
    client, bodies = service(
        raise_(httpx.ConnectError),
        raise_(httpx.RemoteProtocolError),
        raise_(httpx.ReadTimeout),
        answer(503),
        answer(200, STARTED),
    )
    assert post_order(client, BODY, sleep=clock.sleep, clock=lambda: clock.now) == (STARTED, 4)
    assert bodies == [BODY] * 5
    assert clock.delays == [0.1, 0.2, 0.4, 0.8]


def test_a_409_on_a_retry_is_a_bug_and_not_retried() -> None:
    clock = Clock()
    client, bodies = service(answer(503), answer(409))
    with pytest.raises(RetryConflict, match="BUG: retry 1 of order bench-00001"):
        post_order(client, BODY, sleep=clock.sleep, clock=lambda: clock.now)
    assert len(bodies) == 2


@pytest.mark.parametrize("code", [409, 422, 500])
def test_other_answers_are_errors_at_once(code: int) -> None:
    client, bodies = service(answer(code))
    with pytest.raises(RuntimeError, match=f"answered {code}") as raised:
        post_order(client, BODY, sleep=Clock().sleep)
    assert not isinstance(raised.value, RetryConflict)
    assert len(bodies) == 1


def test_gives_up_after_the_budget() -> None:
    clock = Clock()
    client, _ = service(raise_(httpx.ConnectError))
    with pytest.raises(RuntimeError, match="gave up after .* retries"):
        post_order(client, BODY, sleep=clock.sleep, clock=lambda: clock.now)
    assert max(clock.delays) == MAX_DELAY_S
    assert GIVE_UP_AFTER_S - MAX_DELAY_S < clock.now <= GIVE_UP_AFTER_S
