"""Factory helpers for flow tests."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from flows.fulfill import order_summary, record_order, run_order
from storage.db import session_scope
from storage.models import OrderCreate
from storage.snapshot import snapshot
from storage.views import OrderSummary
from tasks.steps import step_names
from tests.support import PYTHON, ROOT, child_env, run_module


def place(
    product_id: str = "SKU-001",
    quantity: int = 2,
    customer_id: str = "cust-42",
    payment_method: str = "tok_visa",
    order_id: str | None = None,
    lines: list[tuple[str, int]] | None = None,
) -> OrderSummary:
    """Record an order (one line, or `lines` of (product, units)) and run its saga in this
    process; return its summary."""
    cart = lines or [(product_id, quantity)]
    order_id, _ = record_order(
        OrderCreate(
            lines=[{"product_id": p, "quantity": q} for p, q in cart],
            customer_id=customer_id,
            payment_method=payment_method,
            order_id=order_id,
        )
    )
    return run_order(order_id)


def engine_state() -> dict[str, Any]:
    """The snapshot as `python -m storage snapshot` prints it."""
    with session_scope() as session:
        return snapshot(session).model_dump(mode="json")


def attempts_of(summary: OrderSummary, step: str) -> list[tuple[str, int]]:
    return [(e.status, e.attempt) for e in summary.events or [] if e.step == step]


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
    lines: list[str] | None = None,
    **env: str,
) -> subprocess.Popen:
    """Start `python -m flows.fulfill --json` for one order (one line, or `lines` given as
    `PRODUCT:UNITS`) in its own process."""
    reuse = ["--order-id", order_id] if order_id else []
    cart = [a for line in lines for a in ("--line", line)] if lines else None
    return subprocess.Popen(
        [
            PYTHON,
            "-m",
            "flows.fulfill",
            *(cart or ["--product", product_id, "--quantity", str(quantity)]),
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
    return order_summary(order_id).status


def completions_per_step(summary: OrderSummary) -> dict[str, int]:
    """How many attempts of each step and compensation reported success."""
    counts: dict[str, int] = {}
    for event in summary.events or []:
        if event.status in {"completed", "compensated"}:
            counts[event.step] = counts.get(event.step, 0) + 1
    return counts


# --- the intake and the batch (tests/flows/test_intake.py, tests/flows/test_batch.py) ---


def orders_by_id() -> dict[str, Any]:
    """Every row of the orders table (leases included), oldest first, in one snapshot."""
    from sqlmodel import col, select

    from storage.models import Order

    with session_scope(readonly=True) as session:
        rows = session.exec(select(Order).order_by(col(Order.created_at)))
        return {order.order_id: order for order in rows}


def record_orders(
    prefix: str, count: int, *, product_id: str = "SKU-003", quantity: int = 1
) -> list[str]:
    """Record `count` pending orders `prefix-00`, `prefix-01`…; nothing runs them."""
    return [
        record_order(
            OrderCreate(
                product_id=product_id,
                quantity=quantity,
                customer_id=f"cust-{prefix}-{i}",
                payment_method="tok_visa",
                order_id=f"{prefix}-{i:02d}",
            )
        )[0]
        for i in range(count)
    ]


def wait_until(condition: Any, what: str, timeout: float = 120) -> None:
    """Poll `condition()` until it is true; fail (naming `what`) after `timeout` seconds."""
    import time

    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def sweep(api_url: str) -> dict[str, Any]:
    """`python -m flows.reconcile --stale-after 0` in a child; its JSON report."""
    from tests.support import run_module

    result = run_module("flows.reconcile", "--stale-after", "0", env=child_env(api_url))
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def side_effects() -> dict[str, dict[str, int]]:
    """{kind: {order id: rows}} for every reservation, charge and warehouse record."""
    from collections import Counter

    from sqlmodel import select

    from storage.models import Payment, Reservation, WarehouseRecord

    with session_scope(readonly=True) as session:
        return {
            kind: dict(Counter(session.exec(select(model.order_id))))
            for kind, model in (
                ("reservation", Reservation),
                ("payment", Payment),
                ("warehouse", WarehouseRecord),
            )
        }


def assert_side_effects_once(order_ids: set[str]) -> None:
    """These orders, and only they, have a reservation, a charge and a warehouse record,
    exactly one of each (whatever became of it since)."""
    for kind, rows in side_effects().items():
        assert set(rows) == order_ids, kind
        assert set(rows.values()) <= {1}, (kind, rows)


STEP_NAMES = step_names()


def ran_once(order_id: str) -> bool:
    """Every step of the order reported success exactly once (a retry's failures aside)."""
    return completions_per_step(order_summary(order_id)) == dict.fromkeys(STEP_NAMES, 1)


def order_line(order_id: str | None = None, **changes: Any) -> str:
    """One JSONL line: an order of one SKU-003 unit, with `changes` (None drops a field)."""
    fields = {
        "order_id": order_id,
        "product_id": "SKU-003",
        "quantity": 1,
        "customer_id": f"cust-{order_id}",
        "payment_method": "tok_visa",
    } | changes
    return json.dumps({key: value for key, value in fields.items() if value is not None})


def run_batch(
    api_url: str, path: Path, *args: str, **env: str
) -> tuple[int, dict[str, Any] | None, str]:
    """`python -m flows.batch PATH --json` in a child: exit code, JSON summary, stderr."""
    result = run_module(
        "flows.batch", str(path), "--json", *args, env=child_env(api_url, **env), timeout=180
    )
    lines = result.stdout.strip().splitlines()
    return result.returncode, json.loads(lines[-1]) if lines else None, result.stderr


def write(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(f"{line}\n" for line in lines))
    return path
