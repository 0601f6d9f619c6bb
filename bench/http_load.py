"""`python -m bench.http_load API ORDERS_FILE [--clients 20]`: mode (a)'s clients. Each of the
clients posts an order (`POST /orders` with its `order_id`), polls its status until it is
terminal, and takes the next. Prints one JSON object: `seconds` (first post to last terminal
status seen) and, per order, `status` and `latency_s` (post sent to terminal status seen).
Exit 1 when a request fails."""

from __future__ import annotations

import argparse
import json
import queue
import sys
import threading
import time
from dataclasses import asdict
from pathlib import Path

import httpx

from bench.workload import OrderSpec, read_orders

TERMINAL = {"completed", "failed", "needs_attention", "cancelled"}
POLL_SECONDS = 0.25
TIMEOUT_SECONDS = 300.0


def one_order(client: httpx.Client, spec: OrderSpec) -> dict[str, object]:
    """Post the order and poll it to its end."""
    began = time.perf_counter()
    posted = client.post("/orders", json=asdict(spec))
    if posted.status_code != 200:
        raise RuntimeError(f"POST /orders answered {posted.status_code}: {posted.text[:300]}")
    while time.perf_counter() - began < TIMEOUT_SECONDS:
        status = client.get(f"/orders/{spec.order_id}/status").raise_for_status().json()["status"]
        if status in TERMINAL:
            return {"status": status, "latency_s": time.perf_counter() - began}
        time.sleep(POLL_SECONDS)
    raise RuntimeError(f"order {spec.order_id} not terminal after {TIMEOUT_SECONDS:.0f} s")


def client_loop(api: str, todo: queue.Queue, results: dict, errors: list[str]) -> None:
    with httpx.Client(base_url=api, timeout=60) as client:
        while not errors:
            try:
                spec = todo.get_nowait()
            except queue.Empty:
                return
            try:
                results[spec.order_id] = one_order(client, spec)
            except (httpx.HTTPError, RuntimeError) as exc:
                errors.append(f"{spec.order_id}: {exc}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.http_load", description=__doc__)
    parser.add_argument("api")
    parser.add_argument("orders", type=Path)
    parser.add_argument("--clients", type=int, default=20)
    args = parser.parse_args(argv)
    todo: queue.Queue[OrderSpec] = queue.Queue()
    for spec in read_orders(args.orders):
        todo.put(spec)
    results: dict[str, dict[str, object]] = {}
    errors: list[str] = []
    started = time.perf_counter()
    clients = [
        threading.Thread(target=client_loop, args=(args.api, todo, results, errors))
        for _ in range(args.clients)
    ]
    for thread in clients:
        thread.start()
    for thread in clients:
        thread.join()
    if errors:
        print(f"bench.http_load: {errors[0]}", file=sys.stderr)
        return 1
    print(json.dumps({"seconds": time.perf_counter() - started, "orders": results}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
