"""Prometheus metrics counted from the database at each scrape, so every API replica reports
the same numbers; SQL aggregates (GROUP BY, histogram buckets counted with CASE) keep a scrape
cheap on tens of thousands of orders."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString
from sqlalchemy import ColumnElement, case, func
from sqlmodel import Session, col, select

from storage.dashboard_queries import (
    compensation_runs,
    order_duration,
    seconds_between,
    status_counts,
)
from storage.db import session_scope
from storage.models import (
    ORDER_STATUSES,
    CompensationStatus,
    EventStatus,
    Order,
    OrderStatus,
    SagaEvent,
    SagaStep,
    StepKind,
    StepStatus,
    WarehouseRecord,
    WarehouseStatus,
    utcnow,
)

# Upper bounds in seconds. A step takes milliseconds, or seconds when retried with backoff.
STEP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
# An order waits for an intake, then runs its saga: well under a second to minutes.
ORDER_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0)
ATTEMPT_BEGINS = {
    EventStatus.STARTED: StepKind.STEP,
    EventStatus.COMPENSATING: StepKind.COMPENSATION,
}  # → kind
# saga_steps statuses with a final duration
FINISHED_STEP_STATUSES = (
    StepStatus.COMPLETED,
    CompensationStatus.COMPENSATED,
    StepStatus.FAILED,
)
# The classic text format (what generate_latest writes), understood by every Prometheus.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

Labels = tuple[str, ...]


@dataclass(frozen=True)
class Histogram:
    """One label set's observations: cumulative counts per upper bound (`+Inf` last), sum."""

    buckets: list[tuple[str, int]]
    total: float


def histograms(
    session: Session,
    seconds: ColumnElement[float],
    bounds: Sequence[float],
    *,
    by: Sequence[Any],
    where: Sequence[ColumnElement[bool]],
) -> dict[Labels, Histogram]:
    """Per value of the `by` columns, the histogram of `seconds` over the rows matching
    `where`: one query, each bucket counted in SQL."""
    # MATERIALIZED (SQLite 3.35+ as RETURNING, PostgreSQL 12+): one duration per row, not per bucket
    rows = select(*by, seconds.label("seconds")).where(*where).cte().prefix_with("MATERIALIZED")
    keys = [rows.c[column.key] for column in by]
    observed = rows.c.seconds
    below = [func.sum(case((observed <= bound, 1), else_=0)) for bound in bounds]
    query = select(*keys, func.count(), func.sum(observed), *below).group_by(*keys)
    names = [floatToGoString(bound) for bound in bounds] + ["+Inf"]
    result = {}
    for row in session.exec(query):
        labels, (count, total, *cumulative) = tuple(row[: len(by)]), row[len(by) :]
        result[labels] = Histogram(
            list(zip(names, [*cumulative, count], strict=True)), float(total or 0)
        )
    return result


def attempt_counts(session: Session) -> tuple[Counter[Labels], Counter[Labels]]:
    """Attempts and failed attempts per (name, kind) of step or compensation, from the saga
    events: an attempt begins with `started` (a step) or `compensating` (a compensation)."""
    rows = session.exec(
        select(SagaEvent.step, SagaEvent.status, func.count())
        .where(col(SagaEvent.status).in_([*ATTEMPT_BEGINS, EventStatus.FAILED]))
        .group_by(SagaEvent.step, SagaEvent.status)
    ).all()
    kinds = {
        name: ATTEMPT_BEGINS[status] for name, status, _ in rows if status != EventStatus.FAILED
    }
    attempts: Counter[Labels] = Counter()
    failures: Counter[Labels] = Counter()
    for name, status, count in rows:
        (failures if status == EventStatus.FAILED else attempts)[
            name, kinds.get(name, StepKind.STEP)
        ] += count
    return attempts, failures


def units_shipped(session: Session) -> Counter[Labels]:
    """Units of every applied warehouse record (a line of a shipment), by product."""
    rows = session.exec(
        select(WarehouseRecord.product_id, func.sum(WarehouseRecord.quantity))
        .where(WarehouseRecord.status == WarehouseStatus.APPLIED)
        .group_by(WarehouseRecord.product_id)
    ).all()
    return Counter({(product_id,): units for product_id, units in rows})


def oldest_pending_age(session: Session) -> float:
    """Seconds the oldest `pending` order has waited (0 when none waits): the intake's lag."""
    oldest = session.exec(
        select(func.min(Order.created_at)).where(Order.status == OrderStatus.PENDING)
    ).one()
    if oldest is None:
        return 0.0
    return max(0.0, (utcnow() - oldest.replace(tzinfo=oldest.tzinfo or UTC)).total_seconds())


def _counter(name: str, doc: str, labels: Sequence[str], values: Counter[Labels]) -> Metric:
    family = CounterMetricFamily(name, doc, labels=labels)
    for key, value in sorted(values.items()):
        family.add_metric(key, value)
    return family


def _histogram(
    name: str, doc: str, labels: Sequence[str], values: dict[Labels, Histogram]
) -> Metric:
    family = HistogramMetricFamily(name, doc, labels=labels)
    for key, histogram in sorted(values.items()):
        family.add_metric(key, histogram.buckets, histogram.total)
    return family


def families(session: Session) -> Iterator[Metric]:
    """Every FlowForge metric family, read from the database."""
    statuses = status_counts(session)
    orders = GaugeMetricFamily("flowforge_orders", "Orders by current status.", labels=["status"])
    for status in dict.fromkeys([*ORDER_STATUSES, *statuses]):
        orders.add_metric([status], statuses.get(status, 0))
    yield orders
    yield CounterMetricFamily(
        "flowforge_orders_accepted",
        "Orders recorded since the database was created.",
        value=sum(statuses.values()),
    )
    yield GaugeMetricFamily(
        "flowforge_needs_attention_orders",
        "Orders waiting for a person: a compensation gave up (status needs_attention).",
        value=statuses.get(OrderStatus.NEEDS_ATTENTION, 0),
    )
    yield GaugeMetricFamily(
        "flowforge_oldest_pending_order_age_seconds",
        "Seconds the oldest pending order has waited to be run (0 when none waits).",
        value=oldest_pending_age(session),
    )
    yield CounterMetricFamily(
        "flowforge_order_lines",
        "Lines of the orders recorded (a cart of three products is three lines).",
        value=session.exec(
            select(func.coalesce(func.sum(func.json_array_length(Order.lines)), 0))
        ).one(),
    )
    yield _counter(
        "flowforge_units_shipped",
        "Units in applied warehouse records (shipments not reverted), by product.",
        ["product_id"],
        units_shipped(session),
    )
    attempts, failures = attempt_counts(session)
    by_name = ["name", "kind"]
    yield _counter(
        "flowforge_saga_attempts", "Attempts of each step and compensation.", by_name, attempts
    )
    yield _counter(
        "flowforge_saga_failures",
        "Failed attempts of each step and compensation.",
        by_name,
        failures,
    )
    runs: Counter[Labels] = Counter()
    for run in compensation_runs(session):
        runs[(run["compensation"],)] += run["orders"]
    yield _counter(
        "flowforge_compensations_run", "Orders on which each compensation ran.", ["name"], runs
    )
    settled = (
        col(SagaStep.status).in_(FINISHED_STEP_STATUSES),
        col(SagaStep.started_at).is_not(None),
        col(SagaStep.finished_at).is_not(None),
    )
    step_seconds = seconds_between(session, SagaStep.started_at, SagaStep.finished_at)
    yield _histogram(
        "flowforge_saga_step_duration_seconds",
        "Settled steps and compensations: first attempt's start to last attempt's end.",
        by_name,
        histograms(
            session, step_seconds, STEP_BUCKETS, by=[SagaStep.name, SagaStep.kind], where=settled
        ),
    )
    yield _histogram(
        "flowforge_order_latency_seconds",
        "Finished orders: recorded to terminal status, by that status.",
        ["status"],
        histograms(
            session,
            order_duration(session),
            ORDER_BUCKETS,
            by=[Order.status],
            where=[col(Order.finished_at).is_not(None)],
        ),
    )


class DatabaseCollector(Collector):
    """Collects every family at scrape time, from one read-only snapshot of the database."""

    def collect(self) -> Iterator[Metric]:
        with session_scope(readonly=True) as session:
            collected = list(families(session))
        yield from collected


def registry() -> CollectorRegistry:
    """A private registry holding only FlowForge's database collector."""
    private = CollectorRegistry()
    private.register(DatabaseCollector())
    return private
