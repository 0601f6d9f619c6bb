"""`python -m bench.open_load API ORDERS_FILE --rate R`: mode (g)'s client, an open loop. It
sends the i-th order i/R seconds after the first, whatever the service has answered so far:
each `POST /orders` on one of POSTERS threads, retried with the same id and body on a
connection error or a 503 (`bench.post_order`). Then it long-polls every order until it is
terminal. Prints one JSON object: `seconds` (first post to last terminal status seen),
`post_retries`, `post_lag_s` (per order, how late its first attempt left against its
schedule: large when the posters could not keep up, and the rate was not really offered).
Exit 1 when a request fails; a 409 on a retry is a bug, and its line starts `BUG:`."""

from __future__ import annotations

import json
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from pathlib import Path

import httpx

from bench.http_load import TERMINAL, TIMEOUT_SECONDS, wait_for_change
from bench.post_order import RetryConflict, post_order
from bench.workload import OrderSpec, read_orders
from storage.arguments import OneLineParser, number

POSTERS = 32
MAX_RATE = 1000.0


def rate(text: str) -> float:
    """An argparse type: orders per second, from 0.1 to MAX_RATE."""
    return number(text, float, "a number of orders per second", 0.1, MAX_RATE)


def send(client: httpx.Client, spec: OrderSpec, due: float) -> tuple[float, int]:
    """Post the order; (how late it left against `due`, its retries)."""
    lag = max(0.0, time.perf_counter() - due)
    _, retries = post_order(client, asdict(spec))
    return lag, retries


def offer(
    client: httpx.Client, specs: list[OrderSpec], per_second: float
) -> list[tuple[float, int]]:
    """Post every order on its schedule, never waiting for an answer to send the next; each
    one's (lag, retries). Raises the first failure once every order was sent."""
    start = time.perf_counter()
    with ThreadPoolExecutor(POSTERS) as posters:
        sent = []
        for i, spec in enumerate(specs):
            due = start + i / per_second
            time.sleep(max(0.0, due - time.perf_counter()))
            sent.append(posters.submit(send, client, spec, due))
        return [post.result() for post in sent]


def follow(client: httpx.Client, specs: list[OrderSpec]) -> None:
    """Long-poll each order until it is terminal."""
    deadline = time.perf_counter() + TIMEOUT_SECONDS
    for spec in specs:
        status = ""
        while status not in TERMINAL:
            if time.perf_counter() > deadline:
                raise RuntimeError(
                    f"order {spec.order_id} not terminal after {TIMEOUT_SECONDS:.0f} s"
                )
            status = wait_for_change(client, spec.order_id)


def main(argv: list[str] | None = None) -> int:
    parser = OneLineParser(prog="python -m bench.open_load", description=__doc__)
    parser.add_argument("api")
    parser.add_argument("orders", type=Path)
    parser.add_argument("--rate", type=rate, required=True, help="orders per second")
    args = parser.parse_args(argv)
    specs = read_orders(args.orders)
    with httpx.Client(base_url=args.api, timeout=60) as client:
        started = time.perf_counter()
        try:
            posts = offer(client, specs, args.rate)
            follow(client, specs)
        except RetryConflict as exc:
            print(f"bench.open_load: {exc}", file=sys.stderr)
            return 1
        except (httpx.HTTPError, RuntimeError) as exc:
            print(f"bench.open_load: {type(exc).__name__}: {exc}", file=sys.stderr)
            return 1
        seconds = time.perf_counter() - started
    report = {
        "seconds": seconds,
        "post_retries": sum(retries for _, retries in posts),
        "post_lag_s": [lag for lag, _ in posts],
    }
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
