"""Factory helpers for flow tests."""

from __future__ import annotations

import json
import subprocess
from typing import Any

from flows.fulfill import order_result, record_order, run_order
from storage.db import session_scope
from storage.snapshot import snapshot
from tests.conftest import PYTHON, ROOT, child_env


def place(
    product_id: str = "SKU-001",
    quantity: int = 2,
    customer_id: str = "cust-42",
    payment_method: str = "tok_visa",
    order_id: str | None = None,
) -> dict[str, Any]:
    """Record an order and run its saga in this process; return its summary."""
    order_id, _ = record_order(
        product_id=product_id,
        quantity=quantity,
        customer_id=customer_id,
        payment_method=payment_method,
        order_id=order_id,
    )
    return run_order(order_id)


def engine_state() -> dict[str, Any]:
    with session_scope() as session:
        return snapshot(session)


def attempts_of(summary: dict[str, Any], step: str) -> list[tuple[str, int]]:
    return [(e["status"], e["attempt"]) for e in summary["events"] if e["step"] == step]


def flow_run_state_name(flow_run_id: str) -> str:
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        return client.read_flow_run(flow_run_id).state.name


def spawn_order(
    api_url: str,
    order_id: str | None = None,
    *,
    product_id: str = "SKU-003",
    quantity: int = 2,
    **env: str,
) -> subprocess.Popen:
    """Start `python -m flows.fulfill --json` for one order in its own process."""
    reuse = ["--order-id", order_id] if order_id else []
    return subprocess.Popen(
        [
            PYTHON,
            "-m",
            "flows.fulfill",
            "--product",
            product_id,
            "--quantity",
            str(quantity),
            "--customer",
            f"cust-{order_id or 'racer'}",
            "--payment-method",
            "tok_visa",
            *reuse,
            "--json",
        ],
        env=child_env(api_url, **env),
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def race(api_url: str, racers: int, *, product_id: str, quantity: int) -> list[dict[str, Any]]:
    """`racers` processes order the same product at once; returns their JSON results."""
    procs = [spawn_order(api_url, product_id=product_id, quantity=quantity) for _ in range(racers)]
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=180)
        assert proc.returncode in (0, 1), err[-2000:]
        results.append(json.loads(out))
    return results


def order_status(order_id: str) -> str:
    return order_result(order_id)["status"]


def completions_per_step(summary: dict[str, Any]) -> dict[str, int]:
    """How many attempts of each step and compensation reported success."""
    counts: dict[str, int] = {}
    for event in summary["events"]:
        if event["status"] in {"completed", "compensated"}:
            counts[event["step"]] = counts.get(event["step"], 0) + 1
    return counts
