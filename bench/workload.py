"""The workload every mode runs: N single-unit orders spread over the default catalog's
products, every tenth one named `…-fail` so that `FAIL_AT=warehouse@*-fail` fails it at the
warehouse on every attempt (and it is compensated); stock received for all of them first.
And the check after a mode: the audit is clean and every order ended as expected (or, for a
mode that writes no books, that it wrote none and reported every order completed)."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

from sqlmodel import select

from payments.audit import audit
from storage import saga_log
from storage.db import migrate_database, session_scope
from storage.models import Order, OrderCreate
from storage.operations import receive_stock

PRODUCTS = ("SKU-001", "SKU-002", "SKU-003")
FAILING_SUFFIX = "-fail"
FAIL_EVERY = 10
FAIL_AT = f"warehouse@*{FAILING_SUFFIX}"


@dataclass(frozen=True)
class OrderSpec:
    """One order, in the fields of a `flows.batch` line."""

    order_id: str
    product_id: str
    customer_id: str
    quantity: int = 1
    payment_method: str = "tok_visa"

    @property
    def expected(self) -> str:
        return "failed" if self.order_id.endswith(FAILING_SUFFIX) else "completed"


def orders(count: int) -> list[OrderSpec]:
    """`count` orders; the first and every tenth after it fail at the warehouse."""
    return [
        OrderSpec(
            order_id=f"bench-{i:05d}{FAILING_SUFFIX if i % FAIL_EVERY == 0 else ''}",
            product_id=PRODUCTS[i % len(PRODUCTS)],
            customer_id=f"cust-{i % 50}",
        )
        for i in range(count)
    ]


def write_orders(path: Path, specs: list[OrderSpec]) -> None:
    path.write_text("".join(json.dumps(asdict(spec)) + "\n" for spec in specs))


def read_orders(path: Path) -> list[OrderSpec]:
    return [OrderSpec(**json.loads(line)) for line in path.read_text().splitlines() if line]


def expected_counts(specs: list[OrderSpec]) -> dict[str, int]:
    return dict(Counter(spec.expected for spec in specs))


def receive(url: str, specs: list[OrderSpec]) -> None:
    """Create the database (the default catalog) and receive one unit per order of each
    product. Created on purpose: a missing file is only created implicitly when the caller has
    no database configured, and the bench must not depend on the caller's environment."""
    migrate_database(url)
    with session_scope(url) as session:
        for product_id, units in Counter(spec.product_id for spec in specs).items():
            receive_stock(session, product_id=product_id, quantity=units)


def record(spec: OrderSpec) -> None:
    """Record the order as pending in the configured database, as every entry point does."""
    with session_scope() as session:
        saga_log.create_order(session, OrderCreate(**asdict(spec)))


@dataclass
class Books:
    """What a mode left in its database."""

    problems: list[str] = field(default_factory=list)  # audit findings and wrong outcomes
    counts: dict[str, int] = field(default_factory=dict)  # orders by status
    latencies: list[float] = field(default_factory=list)  # created_at → finished_at, seconds

    @property
    def balanced(self) -> bool:
        return not self.problems


def check_without_books(counts: dict[str, int], specs: list[OrderSpec], database: Path) -> Books:
    """A mode with no books to balance (Prefect's floor): nothing may exist at `database` (the
    SQLite file its processes were pointed at) and it must report every order completed."""
    problems = [f"wrote FlowForge's database {database}"] if database.exists() else []
    if counts != {"completed": len(specs)}:
        problems.append(f"orders by final state {counts}, expected {len(specs)} completed")
    return Books(problems=problems, counts=counts)


def check(url: str, specs: list[OrderSpec]) -> Books:
    """Audit the database and compare every order's status with the one expected."""
    with session_scope(url, readonly=True) as session:
        problems = audit(session)
        rows = {order.order_id: order for order in session.exec(select(Order))}
    wanted = {spec.order_id: spec.expected for spec in specs}
    wrong = [
        f"{order_id}: {rows[order_id].status if order_id in rows else 'missing'}, expected {status}"
        for order_id, status in wanted.items()
        if order_id not in rows or rows[order_id].status != status
    ]
    wrong += [f"{order_id}: not part of the workload" for order_id in rows.keys() - wanted.keys()]
    if wrong:
        problems.append(f"{len(wrong)} orders did not end as expected: " + "; ".join(wrong[:3]))
    return Books(
        problems=problems,
        counts=dict(Counter(order.status for order in rows.values())),
        latencies=[
            (order.finished_at - order.created_at).total_seconds()
            for order in rows.values()
            if order.finished_at is not None
        ],
    )
