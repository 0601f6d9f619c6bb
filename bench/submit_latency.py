"""Submit-to-completed latency of single orders, one at a time, through a running stack.

    python -m deployments.stack &          # or: make stack
    python -m bench.submit_latency [--api URL] [--orders 20]

Each order is named here (`latency-…`) and posted with `bench.post_order` (retried with the
same id and body on a connection error or a 503). Prints submit→running (the intake took it)
and submit→completed p50/p95/max, and the posts' retries. For throughput under load and CPU
per order, see `python -m bench`."""

from __future__ import annotations

import argparse
import json
import math
import os
import time
import uuid

import httpx

from bench.post_order import post_order

TERMINAL = {"completed", "failed", "needs_attention", "cancelled"}
POLL_SECONDS = 0.05


def percentile(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


def one_order(client: httpx.Client, product: str) -> tuple[float, float, int]:
    """Submit one order and poll it; (seconds until running, seconds until completed, retries
    of its post)."""
    body = {
        "order_id": f"latency-{uuid.uuid4().hex}",
        "product_id": product,
        "quantity": 1,
        "customer_id": "bench",
        "payment_method": "tok",
    }
    began = time.perf_counter()
    started, retries = post_order(client, body)
    workflow_id = started["workflow_id"]
    running_at = None
    while True:
        status = client.get(f"/orders/{workflow_id}/status").raise_for_status().json()["status"]
        now = time.perf_counter() - began
        if status != "pending" and running_at is None:
            running_at = now
        if status in TERMINAL:
            if status != "completed":
                raise RuntimeError(f"order {workflow_id} ended {status}")
            return running_at or now, now, retries
        time.sleep(POLL_SECONDS)


def summary(values: list[float]) -> dict[str, float]:
    return {
        "p50": round(percentile(values, 0.5), 2),
        "p95": round(percentile(values, 0.95), 2),
        "max": round(max(values), 2),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.submit_latency", description=__doc__)
    parser.add_argument("--api", default="http://127.0.0.1:8000")
    parser.add_argument("--orders", type=int, default=20)
    parser.add_argument("--product", default="SKU-003")
    args = parser.parse_args(argv)
    token = os.environ.get("FLOWFORGE_API_TOKEN")
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    with httpx.Client(base_url=args.api, headers=headers, timeout=60) as client:
        results = [one_order(client, args.product) for _ in range(args.orders)]
    report = {
        "orders": args.orders,
        "submit_to_running_s": summary([r[0] for r in results]),
        "submit_to_completed_s": summary([r[1] for r in results]),
        "post_retries": sum(r[2] for r in results),
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
