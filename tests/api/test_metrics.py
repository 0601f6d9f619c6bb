"""GET /metrics: the Prometheus text format, every count equal to the database's."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from datetime import UTC, datetime

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlmodel import select

from bench.factory import fill_orders
from flows.fulfill import record_order
from storage.db import session_scope
from storage.models import ORDER_STATUSES, Order, OrderCreate, SagaEvent, SagaStep, utcnow
from storage.prometheus import ORDER_BUCKETS, STEP_BUCKETS
from storage.settings import get_settings
from tests.flows.helpers import place

# (FAIL_AT, order arguments): sagas run for real, so their steps carry start and end times
REAL_ORDERS = (
    ("", {}),
    ("payment:1", {"quantity": 1}),  # a failed attempt, then a successful retry
    ("warehouse,refund", {"product_id": "SKU-003"}),  # a compensation gives up
)
SLACK = 0.002  # seconds: a duration this close to a bucket bound may fall either side of it


def scrape(client, token: str | None = None) -> dict[str, list]:
    """Samples of every family, by sample name (`…_total`, `…_bucket`, `…_count`, …)."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    response = client.get("/metrics", headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    samples: dict[str, list] = {}
    for family in text_string_to_metric_families(response.text):
        assert family.name.startswith("flowforge_") and family.documentation
        for sample in family.samples:
            samples.setdefault(sample.name, []).append(sample)
    return samples


def by_labels(samples: list, *names: str) -> dict[tuple[str, ...], float]:
    return {tuple(s.labels[name] for name in names): s.value for s in samples}


def seconds(start: datetime, end: datetime) -> float:
    return (end - start).total_seconds()


def assert_histogram(
    samples: dict[str, list],
    name: str,
    labels: tuple[str, ...],
    observed: dict[tuple[str, ...], list[float]],
    bounds: Iterable[float],
) -> None:
    """The histogram `name` holds exactly `observed`: counts, sums and every bucket."""
    assert by_labels(samples[f"{name}_count"], *labels) == {
        key: len(values) for key, values in observed.items()
    }
    sums = by_labels(samples[f"{name}_sum"], *labels)
    assert sums == {key: pytest.approx(sum(v), abs=0.01) for key, v in observed.items()}
    buckets = by_labels(samples[f"{name}_bucket"], *labels, "le")
    for key, values in observed.items():
        assert buckets[(*key, "+Inf")] == len(values)
        for bound in bounds:
            count = buckets[(*key, str(bound))]
            assert sum(v <= bound - SLACK for v in values) <= count
            assert count <= sum(v <= bound + SLACK for v in values)


@pytest.fixture
def filled(database, prefect_server, monkeypatch):
    """Bulk orders of every outcome, a few run for real, and one still pending (SQLite, then
    PostgreSQL); requested before `client`, which hides the Prefect server."""
    fill_orders(40)
    for fail_at, arguments in REAL_ORDERS:
        monkeypatch.setenv("FAIL_AT", fail_at)
        place(**arguments)
    monkeypatch.delenv("FAIL_AT")
    record_order(
        OrderCreate(product_id="SKU-002", quantity=1, customer_id="late", payment_method="tok_visa")
    )


def test_metrics_equal_the_database(filled, client):
    before = utcnow()
    samples = scrape(client)
    with session_scope(readonly=True) as session:
        orders = session.exec(select(Order)).all()
        events = session.exec(select(SagaEvent)).all()
        steps = session.exec(select(SagaStep)).all()
    statuses = Counter(order.status for order in orders)
    assert by_labels(samples["flowforge_orders"], "status") == {
        (status,): statuses[status] for status in ORDER_STATUSES
    }
    assert statuses["needs_attention"] == 3  # two bulk orders, one real
    assert samples["flowforge_orders_accepted_total"][0].value == len(orders) == 44
    assert samples["flowforge_needs_attention_orders"][0].value == statuses["needs_attention"]

    kinds = {step.name: step.kind for step in steps}
    begins = {"started": "step", "compensating": "compensation"}
    attempts = Counter((e.step, begins[e.status]) for e in events if e.status in begins)
    failures = Counter((e.step, kinds[e.step]) for e in events if e.status == "failed")
    assert by_labels(samples["flowforge_saga_attempts_total"], "name", "kind") == attempts
    assert by_labels(samples["flowforge_saga_failures_total"], "name", "kind") == failures
    assert failures["process_payment", "step"] == 1 + 2  # the real retry, two bulk failures
    every_attempt = 1 + get_settings().compensation_retries
    assert failures["refund_payment", "compensation"] == 2 + every_attempt  # bulk, then real
    ran = Counter((s.name,) for s in steps if s.kind == "compensation" and s.attempts)
    assert by_labels(samples["flowforge_compensations_run_total"], "name") == ran

    durations: dict[tuple[str, ...], list[float]] = {}
    for step in steps:
        if step.status in {"completed", "compensated", "failed"} and step.finished_at:
            durations.setdefault((step.name, step.kind), []).append(
                seconds(step.started_at, step.finished_at)
            )
    assert len(durations[("update_warehouse", "step")]) == 3  # only the real sagas are timed
    assert_histogram(
        samples, "flowforge_saga_step_duration_seconds", ("name", "kind"), durations, STEP_BUCKETS
    )
    latencies: dict[tuple[str, ...], list[float]] = {}
    for order in orders:
        if order.finished_at:
            latencies.setdefault((order.status,), []).append(
                seconds(order.created_at, order.finished_at)
            )
    assert sum(map(len, latencies.values())) == len(orders) - 1  # all but the pending one
    assert_histogram(
        samples, "flowforge_order_latency_seconds", ("status",), latencies, ORDER_BUCKETS
    )

    (pending,) = [order for order in orders if order.status == "pending"]
    recorded = pending.created_at.replace(tzinfo=UTC)
    age = samples["flowforge_oldest_pending_order_age_seconds"][0].value
    assert seconds(recorded, before) <= age <= seconds(recorded, utcnow())


def test_an_empty_database_reports_zeros(client):
    samples = scrape(client)
    assert by_labels(samples["flowforge_orders"], "status") == {
        (status,): 0 for status in ORDER_STATUSES
    }
    for name in (
        "flowforge_orders_accepted_total",
        "flowforge_needs_attention_orders",
        "flowforge_oldest_pending_order_age_seconds",
    ):
        assert [sample.value for sample in samples[name]] == [0]
    assert "flowforge_saga_attempts_total" not in samples
    assert "flowforge_order_latency_seconds_count" not in samples


def test_metrics_need_the_api_token_when_one_is_set(client, monkeypatch):
    monkeypatch.setenv("FLOWFORGE_API_TOKEN", "s3cret")
    get_settings.cache_clear()
    refused = client.get("/metrics")
    assert refused.status_code == 401
    assert refused.headers["WWW-Authenticate"] == "Bearer"
    assert client.get("/metrics", headers={"Authorization": "Bearer guess"}).status_code == 401
    assert scrape(client, "s3cret")["flowforge_orders_accepted_total"][0].value == 0


def test_the_metrics_token_alone_opens_metrics_and_nothing_else(client, monkeypatch):
    monkeypatch.setenv("FLOWFORGE_API_TOKEN", "s3cret")
    monkeypatch.setenv("FLOWFORGE_METRICS_TOKEN", "scraper")
    get_settings.cache_clear()
    assert "flowforge_orders" in scrape(client, "scraper")
    for token in (None, "s3cret"):
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        assert client.get("/metrics", headers=headers).status_code == 401
    bearer = {"Authorization": "Bearer scraper"}
    assert client.get("/inventory", headers=bearer).status_code == 401
    assert client.get("/inventory", headers={"Authorization": "Bearer s3cret"}).status_code == 200


def test_a_metrics_token_closes_metrics_on_an_open_api(client, monkeypatch):
    monkeypatch.setenv("FLOWFORGE_METRICS_TOKEN", "scraper")
    get_settings.cache_clear()
    assert client.get("/metrics").status_code == 401
    assert "flowforge_orders" in scrape(client, "scraper")
    assert client.get("/inventory").status_code == 200
