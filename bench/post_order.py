"""`POST /orders` as a client should send it: the client names the order (`order_id`), so a
connection error, a dropped connection, a timeout or a 503 is retried with the same id and
body (the same answer, 200, if the first attempt was recorded), with a short bounded back-off.
A 409 on a retry means the service recorded another body under that id: a bug, never retried."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx

FIRST_DELAY_S = 0.1
MAX_DELAY_S = 2.0
GIVE_UP_AFTER_S = 30.0


class RetryConflict(RuntimeError):
    """A retry with the same order_id and body answered 409."""


def post_order(
    client: httpx.Client,
    body: dict[str, Any],
    *,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> tuple[dict[str, Any], int]:
    """Post `body` (which names its `order_id`) until the service answers; (the 200 answer's
    JSON, how many retries it took). Gives up after about GIVE_UP_AFTER_S of failures."""
    order_id = body["order_id"]
    delay, deadline, retries = FIRST_DELAY_S, clock() + GIVE_UP_AFTER_S, 0
    while True:
        try:
            response = client.post("/orders", json=body)
        except httpx.TransportError as exc:
            failure = f"{type(exc).__name__}: {exc}"
        else:
            if response.status_code == 409 and retries:
                raise RetryConflict(
                    f"BUG: retry {retries} of order {order_id} (same id, same body) answered "
                    f"409: {response.text[:300]}"
                )
            if response.status_code != 503:
                if response.status_code != 200:
                    raise RuntimeError(
                        f"POST /orders {order_id} answered {response.status_code}: "
                        f"{response.text[:300]}"
                    )
                return response.json(), retries
            failure = f"503: {response.text[:300]}"
        if clock() + delay > deadline:
            raise RuntimeError(
                f"POST /orders {order_id}: gave up after {retries} retries "
                f"({GIVE_UP_AFTER_S:.0f} s); last: {failure}"
            )
        sleep(delay)
        delay, retries = min(2 * delay, MAX_DELAY_S), retries + 1
