"""`python -m bench.http_load API ORDERS_FILE [--clients 20]`: mode (a)'s clients. Each of the
clients posts an order (`POST /orders` with its `order_id`, retried with the same id and body on
a connection error or a 503: `bench.post_order`), long-polls its status
(`GET /orders/{id}/status?wait=30`, answered when the status changes) until it is terminal, and
takes the next. Prints one JSON object: `seconds` (first post to last terminal status seen),
`post_retries` (all clients') and, per order, `status`, `latency_s` (first post sent to terminal
status seen) and `post_retries`. Exit 1 when a request fails; a 409 on a retry is a bug, and
its line (starting `BUG:`) is printed last."""

from __future__ import annotations

import argparse
import json
import queue
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bench.post_order import RetryConflict, post_order
from bench.workload import OrderSpec, read_orders

TERMINAL = {"completed", "failed", "needs_attention", "cancelled"}
WAIT_SECONDS = 30  # each status request's long poll
TIMEOUT_SECONDS = 300.0


@dataclass
class Load:
    """What the clients share: the orders left, and what they found."""

    todo: queue.Queue[OrderSpec]
    results: dict[str, dict[str, Any]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    bugs: list[str] = field(default_factory=list)  # 409s on retries


def wait_for_change(client: httpx.Client, order_id: str) -> str:
    """The order's status once it is terminal or has changed, or after WAIT_SECONDS."""
    response = client.get(f"/orders/{order_id}/status", params={"wait": WAIT_SECONDS})
    return response.raise_for_status().json()["status"]


def one_order(client: httpx.Client, spec: OrderSpec) -> dict[str, Any]:
    """Post the order and follow it to its end."""
    began = time.perf_counter()
    _, retries = post_order(client, asdict(spec))
    while time.perf_counter() - began < TIMEOUT_SECONDS:
        status = wait_for_change(client, spec.order_id)
        if status in TERMINAL:
            latency = time.perf_counter() - began
            return {"status": status, "latency_s": latency, "post_retries": retries}
    raise RuntimeError(f"order {spec.order_id} not terminal after {TIMEOUT_SECONDS:.0f} s")


def client_loop(api: str, load: Load) -> None:
    with httpx.Client(base_url=api, timeout=60) as client:
        while not (load.errors or load.bugs):
            try:
                spec = load.todo.get_nowait()
            except queue.Empty:
                return
            try:
                load.results[spec.order_id] = one_order(client, spec)
            except RetryConflict as exc:
                load.bugs.append(str(exc))
            except (httpx.HTTPError, RuntimeError) as exc:
                load.errors.append(f"{spec.order_id}: {exc}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.http_load", description=__doc__)
    parser.add_argument("api")
    parser.add_argument("orders", type=Path)
    parser.add_argument("--clients", type=int, default=20)
    args = parser.parse_args(argv)
    load = Load(queue.Queue())
    for spec in read_orders(args.orders):
        load.todo.put(spec)
    started = time.perf_counter()
    clients = [
        threading.Thread(target=client_loop, args=(args.api, load)) for _ in range(args.clients)
    ]
    for thread in clients:
        thread.start()
    for thread in clients:
        thread.join()
    for line in load.errors + load.bugs:
        print(f"bench.http_load: {line}", file=sys.stderr)
    if load.errors or load.bugs:
        return 1
    retries = sum(result["post_retries"] for result in load.results.values())
    seconds = time.perf_counter() - started
    print(json.dumps({"seconds": seconds, "post_retries": retries, "orders": load.results}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
