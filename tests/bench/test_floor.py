"""The baselines are honest: for the same order the floor (`bench.floor`) and the DBOS peer
(`bench.dbos_peer`, via `python -m bench.inprocess dbos`) leave exactly the saga log, order
fields and side effects the Prefect engine leaves, and the audit stays clean."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import col, select

from bench import floor
from bench.workload import OrderSpec, record, write_orders
from storage.db import session_scope
from storage.models import Order, Payment, SagaEvent, SagaStep, WarehouseRecord
from tests.flows.helpers import place
from tests.support import assert_audit_clean, child_env, run_module

pytestmark = pytest.mark.usefixtures("prefect_server", "db")


def trace(order_id: str) -> dict[str, Any]:
    """Everything the saga wrote for the order, with the order id taken out."""
    with session_scope(readonly=True) as session:
        order = session.get(Order, order_id)
        steps = session.exec(
            select(SagaStep).where(SagaStep.order_id == order_id).order_by(col(SagaStep.id))
        )
        events = session.exec(
            select(SagaEvent).where(SagaEvent.order_id == order_id).order_by(col(SagaEvent.id))
        )
        payments = session.exec(select(Payment).where(Payment.order_id == order_id))
        records = session.exec(select(WarehouseRecord).where(WarehouseRecord.order_id == order_id))
        found = {
            "order": (order.status, order.current_step, order.failure_point, order.amount),
            "reason": order.failure_reason,
            "lease": order.lease_owner,
            "steps": [
                (s.name, s.kind, s.position, s.status, s.attempts, s.idempotency_key, s.error)
                for s in steps
            ],
            "events": [(e.step, e.status, e.attempt, e.message) for e in events],
            "payments": [(p.amount, p.status, p.idempotency_key) for p in payments],
            "warehouse": [(w.quantity, w.status) for w in records],
        }
    return json.loads(json.dumps(found).replace(order_id, "ID"))


def spec(order_id: str) -> OrderSpec:
    return OrderSpec(order_id=order_id, product_id="SKU-001", customer_id="cust-42", quantity=2)


@pytest.mark.e2e
@pytest.mark.parametrize("fault", ["", "warehouse", "payment:1", "warehouse,refund"])
def test_baselines_write_what_the_engine_writes(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, fault: str
) -> None:
    monkeypatch.setenv("FAIL_AT", fault)
    place(order_id="engine-1", quantity=2)
    record(spec("floor-1"))
    floor.drive("floor-1")
    write_orders(tmp_path / "orders.jsonl", [spec("dbos-1")])
    peer = run_module(
        "bench.inprocess", "dbos", str(tmp_path / "orders.jsonl"), env=child_env(FAIL_AT=fault)
    )
    assert peer.returncode == 0, peer.stderr[-2000:]
    assert trace("floor-1") == trace("engine-1")
    assert trace("dbos-1") == trace("engine-1")
    assert_audit_clean()
