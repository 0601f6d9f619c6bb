"""The payment step through the official Stripe SDK against the local double of Stripe's API
(`python -m provider`): the same outcomes as the embedded provider, and the books kept straight
when the network lies — a dropped answer, an answer too slow, a provider down for a while or for
good, a crash either side of the charge, a 429, a key used before. Every test ends with the
audit clean (or its expected findings), which includes the reconciliation with Stripe."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlmodel import select

from flows.cancel import cancel
from flows.fulfill import order_summary, record_order, run_order
from flows.outcome import run_locally
from flows.prefect_api import free_port
from flows.reconcile import reconcile
from payments.audit import audit
from payments.client import StripeGateway
from storage import saga_log
from storage.db import session_scope
from storage.models import ChargeRequest, OrderCreate, SagaEvent, utcnow
from storage.settings import get_settings
from tests.flows.helpers import (
    attempts_of,
    engine_state,
    order_line,
    place,
    run_batch,
    spawn_order,
    write,
)
from tests.provider.helpers import API_KEY, Running, running_provider, sdk
from tests.provider.helpers import set_faults as put_faults
from tests.storage.helpers import cart
from tests.support import assert_audit_clean, child_env, run_module

ALL_COMPENSATIONS = ["revert_warehouse", "refund_payment", "release_inventory"]


# The in-doubt cases run on SQLite and again on PostgreSQL (`both_databases`); the others on
# SQLite.
both_databases = pytest.mark.usefixtures("database")
sqlite_only = pytest.mark.usefixtures("db")


@pytest.fixture
def provider(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Running]:
    """A double of Stripe of this test's own (its books start empty), used by this process and
    its children through FLOWFORGE_STRIPE_API_BASE."""
    with running_provider(tmp_path / "provider.sqlite3") as running:
        use_provider(monkeypatch, running.url)
        yield running
    get_settings.cache_clear()


def use_provider(monkeypatch: pytest.MonkeyPatch, url: str, read_timeout: float = 5.0) -> None:
    monkeypatch.setenv("FLOWFORGE_PAYMENT_PROVIDER", "stripe")
    monkeypatch.setenv("FLOWFORGE_STRIPE_API_BASE", url)
    monkeypatch.setenv("STRIPE_API_KEY", API_KEY)
    monkeypatch.setenv("FLOWFORGE_PAYMENT_READ_TIMEOUT", str(read_timeout))
    get_settings.cache_clear()


def use_embedded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLOWFORGE_PAYMENT_PROVIDER", "embedded")
    get_settings.cache_clear()


def client_of(running: Running) -> StripeGateway:
    return StripeGateway(API_KEY, running.url)


def intents_at(running: Running, order_id: str) -> list[tuple[str, int]]:
    """Every PaymentIntent of one order at the double as (state, amount), oldest first; the
    state of one that charged is `succeeded` or `refunded`."""
    return [
        ("refunded" if i.refunded else i.status, i.amount)
        for i in reversed(list(client_of(running).intents()))
        if i.order_id == order_id
    ]


def charges_at(running: Running, order_id: str) -> list[tuple[str, int]]:
    """The PaymentIntents that charged one order as (state, amount)."""
    return [(s, a) for s, a in intents_at(running, order_id) if s in ("succeeded", "refunded")]


def set_faults(running: Running, *rules: dict, **config: object) -> None:
    put_faults(running.url, {"rules": list(rules), **config})


def by_hand(running: Running, key: str, order_id: str, amount: int) -> str:
    """A PaymentIntent for `order_id` created and confirmed behind FlowForge's back (its keys
    `key:create` and `key`); its id."""
    client = client_of(running)
    made = client.create_intent(
        order_id=order_id,
        customer_id="someone",
        amount=amount,
        payment_method="pm_card_visa",
        idempotency_key=f"{key}:create",
    )
    return client.confirm(made.id, idempotency_key=key).id


CONFIRM = "payment_intents.confirm"


def charge_request(order_id: str) -> ChargeRequest | None:
    with session_scope() as session:
        return session.get(ChargeRequest, f"{order_id}:payment")


def outcome(summary) -> tuple:
    """What must not depend on the provider: status, steps, compensations, every attempt."""
    return (
        summary.status,
        summary.steps_completed,
        summary.compensations,
        [(e.step, e.status, e.attempt) for e in summary.events],
    )


@pytest.mark.parametrize(
    "fail_at",
    ["", "inventory", "payment", "payment:1", "warehouse", "warehouse:2", "warehouse,refund:1"],
)
@sqlite_only
def test_same_outcomes_as_the_embedded_provider(
    fail_at, provider, prefect_server, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("FAIL_AT", fail_at)
    over_http = place(order_id="http")
    use_embedded(monkeypatch)
    embedded = place(order_id="embedded")

    assert outcome(over_http) == outcome(embedded)
    payments = {p["order_id"]: p for p in engine_state()["payments"]}
    at_provider = charges_at(provider, "http")
    if "embedded" in payments:
        assert payments["embedded"]["provider"] == "embedded"
        assert payments["http"]["provider"] == "stripe"
        assert payments["http"]["status"] == payments["embedded"]["status"]
        state = {"charged": "succeeded", "refunded": "refunded"}[payments["http"]["status"]]
        assert at_provider == [(state, 2000)]
        assert payments["http"]["charge_id"].startswith("pi_")
    else:
        assert at_provider == [] and "http" not in payments
    use_provider(monkeypatch, provider.url)
    assert_audit_clean()


@both_databases
@pytest.mark.parametrize(
    "method", ["tok_declined_insufficient_funds", "tok_chargeDeclined", "pm_card_chargeDeclined"]
)
def test_a_decline_is_refused_once_and_nothing_is_charged(method, provider, prefect_server):
    summary = place(order_id="declined", payment_method=method)
    assert summary.status == "failed"
    assert "card declined" in summary.failure_reason
    assert attempts_of(summary, "process_payment") == [("started", 1), ("failed", 1)]
    assert summary.compensations == ["release_inventory"]
    assert intents_at(provider, "declined") == [("requires_payment_method", 2000)]
    assert charge_request("declined").status == "declined"
    assert_audit_clean()


@both_databases
def test_a_dropped_answer_is_learnt_by_the_retry_and_charged_once(provider, prefect_server):
    set_faults(provider, {"kind": "drop", "on": CONFIRM, "times": 1})
    summary = place(order_id="dropped")

    assert summary.status == "completed"
    assert attempts_of(summary, "process_payment") == [
        ("started", 1),
        ("failed", 1),
        ("started", 2),
        ("completed", 2),
    ]
    [failed] = [e for e in summary.events if e.status == "failed"]
    assert failed.message.startswith("InDoubt: payment_intents.confirm pi_"), failed.message
    assert "outcome unknown: RemoteProtocolError" in failed.message
    assert intents_at(provider, "dropped") == [("succeeded", 2000)]
    [payment] = engine_state()["payments"]
    request = charge_request("dropped")
    assert request.status == "charged" and payment["charge_id"] == request.charge_id
    assert_audit_clean()


@both_databases
def test_a_dropped_answer_then_a_warehouse_failure_refunds_that_one_charge(
    provider, prefect_server, monkeypatch: pytest.MonkeyPatch
):
    set_faults(provider, {"kind": "drop", "on": CONFIRM, "times": 1})
    monkeypatch.setenv("FAIL_AT", "warehouse")
    summary = place(order_id="dropped-then-failed")

    assert summary.status == "failed"
    assert summary.compensations == ALL_COMPENSATIONS
    assert charges_at(provider, "dropped-then-failed") == [("refunded", 2000)]
    assert [p["status"] for p in engine_state()["payments"]] == ["refunded"]
    assert_audit_clean()


@sqlite_only
def test_an_answer_too_slow_is_learnt_by_retrieving_the_intent(
    provider, prefect_server, monkeypatch: pytest.MonkeyPatch
):
    """Every confirmation's answer comes after the read timeout. The next attempt retrieves the
    intent by its id (strongly consistent), finds it succeeded, and confirms nothing again."""
    use_provider(monkeypatch, provider.url, read_timeout=0.3)
    set_faults(provider, {"kind": "slow", "on": CONFIRM}, slow_seconds=1.0)
    summary = place(order_id="slow")

    assert summary.status == "completed"
    assert attempts_of(summary, "process_payment") == [
        ("started", 1),
        ("failed", 1),
        ("started", 2),
        ("completed", 2),
    ]
    assert intents_at(provider, "slow") == [("succeeded", 2000)]
    assert charge_request("slow").status == "charged"
    assert_audit_clean()


@both_databases
def test_a_charge_whose_answer_was_too_slow_with_no_retry_left_is_refunded(
    provider, prefect_server, monkeypatch: pytest.MonkeyPatch
):
    """FlowForge never hears of the charge: the only attempt times out after Stripe charged.
    The step fails, and the refund retrieves the intent by its id and refunds it."""
    use_provider(monkeypatch, provider.url, read_timeout=0.3)
    monkeypatch.setenv("FLOWFORGE_STEP_RETRIES", "0")
    get_settings.cache_clear()
    set_faults(provider, {"kind": "slow", "on": CONFIRM}, slow_seconds=1.0)
    summary = place(order_id="never-heard")

    assert summary.status == "failed"
    assert summary.failure_point == "process_payment"
    assert "InDoubt" in summary.failure_reason
    assert summary.compensations == ["refund_payment", "release_inventory"]
    assert intents_at(provider, "never-heard") == [("refunded", 2000)]
    [payment] = engine_state()["payments"]
    assert (payment["provider"], payment["status"]) == ("stripe", "refunded")
    request = charge_request("never-heard")  # in doubt until the refund asked Stripe
    assert (request.status, request.charge_id) == ("charged", payment["charge_id"])
    assert "outcome unknown: ReadTimeout" in request.message
    assert_audit_clean()


@pytest.mark.e2e
@sqlite_only
def test_a_provider_down_for_two_attempts_then_up_charges_once(
    prefect_server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    port = free_port()
    use_provider(monkeypatch, f"http://127.0.0.1:{port}")
    monkeypatch.setenv("FLOWFORGE_STEP_RETRIES", "20")
    monkeypatch.setenv("FLOWFORGE_RETRY_DELAYS", "0.25")
    get_settings.cache_clear()
    results = []
    order = threading.Thread(target=lambda: results.append(place(order_id="waits")))
    order.start()
    wait_for(lambda: attempts("waits", "process_payment", "failed") >= 2)
    with running_provider(tmp_path / "provider.sqlite3", port=port) as running:
        order.join(timeout=60)
        [summary] = results
        assert summary.status == "completed"
        failures = [e.message for e in summary.events if e.status == "failed"]
        assert len(failures) >= 2 and all("Unreachable" in m for m in failures), failures
        assert charges_at(running, "waits") == [("succeeded", 2000)]
        assert charge_request("waits").status == "charged"
        assert_audit_clean()


@pytest.mark.e2e
@sqlite_only
def test_a_provider_down_for_good_fails_the_order_with_nothing_charged_or_refunded(
    prefect_server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    port = free_port()
    use_provider(monkeypatch, f"http://127.0.0.1:{port}")
    summary = place(order_id="never-up")

    assert summary.status == "failed"
    assert summary.failure_point == "process_payment"
    assert summary.compensations == ["refund_payment", "release_inventory"]
    assert engine_state()["payments"] == []
    assert charge_request("never-up") is None  # no intent was ever created: nothing to ask
    with session_scope() as session:
        assert audit(session)[0].startswith("cannot reconcile with Stripe at http://127.0.0.1")
    with running_provider(tmp_path / "provider.sqlite3", port=port) as running:
        assert charges_at(running, "never-up") == []
        assert_audit_clean()


@pytest.mark.e2e
@both_databases
@pytest.mark.parametrize("moment", ["before", "after"])
def test_a_crash_either_side_of_the_charge_then_the_sweep_charges_once(
    moment, provider, prefect_server
):
    child = spawn_order(
        prefect_server, "crashed", CRASH_AT=f"payment:{moment}", FLOWFORGE_LEASE_SECONDS="1"
    )
    child.communicate(timeout=180)
    assert child.returncode == -9
    time.sleep(1.2)
    charged_before_sweep = charges_at(provider, "crashed")
    assert charged_before_sweep == ([] if moment == "before" else [("succeeded", 2000)])

    assert run_locally(reconcile, stale_after=0)["swept"] == 1
    summary = order_summary("crashed")
    assert summary.status == "completed"
    assert charges_at(provider, "crashed") == [("succeeded", 2000)]
    assert_audit_clean()


@both_databases
def test_a_cancelled_order_is_refunded_at_the_provider(provider, prefect_server):
    assert place(order_id="changed-mind").status == "completed"
    summary = cancel("changed-mind").summary
    assert (summary.status, summary.compensations) == ("cancelled", ALL_COMPENSATIONS)
    assert charges_at(provider, "changed-mind") == [("refunded", 2000)]
    assert [p["status"] for p in engine_state()["payments"]] == ["refunded"]
    assert_audit_clean()


@both_databases
def test_the_reconciliation_reports_what_happened_behind_flowforges_back(provider, prefect_server):
    place(order_id="charged-twice")
    place(order_id="refunded-there")
    assert_audit_clean()
    extra = by_hand(provider, "by-hand", "charged-twice", 500)
    ours = charge_request("refunded-there").charge_id
    client_of(provider).refund(ours, idempotency_key="by-hand-refund")
    stranger = by_hand(provider, "stranger", "nobody", 700)
    with session_scope() as session:
        problems = audit(session)
    assert sorted(problems) == sorted(
        [
            f"PaymentIntent {extra} (succeeded, 500) for order charged-twice (completed) is "
            "not in FlowForge's books",
            f"PaymentIntent {ours} (refunded, 2000) for order refunded-there is charged in "
            "FlowForge's books",
            f"PaymentIntent {stranger} (succeeded, 700) for order nobody that FlowForge does "
            "not have",
            f"order charged-twice is charged 2 times at Stripe: {extra}, "
            f"{charge_request('charged-twice').charge_id}",
        ]
    )


def attempts(order_id: str, step: str, status: str) -> int:
    """How many of the step's saga events have this status so far."""
    with session_scope() as session:
        return len(
            session.exec(
                select(SagaEvent).where(
                    SagaEvent.order_id == order_id,
                    SagaEvent.step == step,
                    SagaEvent.status == status,
                )
            ).all()
        )


def wait_for(condition, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


@both_databases
def test_a_burst_of_30_orders_with_random_provider_faults_keeps_the_books(
    provider, prefect_server, tmp_path: Path
):
    """The first two confirmations and refunds are dropped; after them each creation,
    confirmation and refund has a 1 in 10 chance of each fault; 6 of the orders fail at the
    warehouse. Every order ends, and Stripe and FlowForge agree."""
    failing = {f"burst-{i}-fail" for i in range(6)}
    orders = sorted(failing | {f"burst-{i}-ok" for i in range(24)})
    set_faults(
        provider,
        {"kind": "drop", "on": CONFIRM, "times": 2},
        {"kind": "drop", "on": "refunds.create", "times": 2},
        *(
            {"kind": kind, "on": on, "probability": 0.1}
            for kind in ("error", "rate_limit", "drop", "slow")
            for on in ("payment_intents.create", CONFIRM, "refunds.create")
        ),
        slow_seconds=1.0,
        seed=7,
    )
    path = write(tmp_path / "burst.jsonl", [order_line(oid) for oid in orders])
    code, summary, err = run_batch(
        prefect_server,
        path,
        "--concurrency",
        "8",
        FAIL_AT="warehouse@*-fail",
        FLOWFORGE_PAYMENT_READ_TIMEOUT="0.5",
        FLOWFORGE_STEP_RETRIES="5",
        FLOWFORGE_COMPENSATION_RETRIES="5",
        FLOWFORGE_RETRY_DELAYS="0.1",
    )
    assert summary is not None, err[-2000:]
    statuses = {oid: order_summary(oid) for oid in orders}
    for oid, result in statuses.items():
        if oid in failing:
            assert (result.status, result.compensations) == ("failed", ALL_COMPENSATIONS)
        elif result.status != "completed":  # every payment attempt lost to faults
            assert (result.status, result.failure_point) == ("failed", "process_payment")
    completed = [oid for oid, result in statuses.items() if result.status == "completed"]
    assert len(completed) >= 22
    for oid in completed:
        assert charges_at(provider, oid) == [("succeeded", 1000)]
    in_doubt = [
        e.step
        for result in statuses.values()
        for e in result.events
        if e.status == "failed" and e.message.startswith("InDoubt")
    ]
    assert {"process_payment", "refund_payment"} <= set(in_doubt)  # the faults did strike
    assert_audit_clean()


@sqlite_only
def test_a_refund_cancels_an_intent_whose_every_confirmation_met_a_503(provider, prefect_server):
    """Every confirmation meets a 503: nothing was charged, but each answer was in doubt. The
    refund retrieves the intent, finds it unconfirmed and cancels it — after which no request
    still on its way can charge it — and the order ends failed, nothing charged."""
    set_faults(provider, {"kind": "error", "on": CONFIRM})
    summary = place(order_id="answered-503")

    assert summary.status == "failed"
    assert summary.compensations == ["refund_payment", "release_inventory"]
    assert attempts_of(summary, "refund_payment") == [("compensating", 1), ("compensated", 1)]
    assert intents_at(provider, "answered-503") == [("canceled", 2000)]
    assert engine_state()["payments"] == []
    assert charge_request("answered-503").status == "canceled"
    assert_audit_clean()


@sqlite_only
def test_a_429_is_retried_with_the_steps_back_off(provider, prefect_server):
    set_faults(provider, {"kind": "rate_limit", "on": CONFIRM, "times": 1})
    summary = place(order_id="limited")

    assert summary.status == "completed"
    [failed] = [e for e in summary.events if e.status == "failed"]
    assert failed.step == "process_payment" and " 429 " in failed.message, failed.message
    assert attempts_of(summary, "process_payment")[-1] == ("completed", 2)
    assert intents_at(provider, "limited") == [("succeeded", 2000)]
    assert_audit_clean()


@sqlite_only
def test_an_idempotency_error_fails_the_step_with_stripes_message(provider, prefect_server):
    """The confirmation's key was used before on another request (not an order's). Stripe
    answers `idempotency_error`: the step fails at once, never retried, with Stripe's message;
    the refund cancels the order's own intent, and the other request is left alone."""
    other = sdk(provider.url).v1.payment_intents.create(
        params={"amount": 100, "currency": "usd", "payment_method": "pm_card_visa"}
    )
    sdk(provider.url).v1.payment_intents.confirm(
        other.id, options={"idempotency_key": "key-used:payment"}
    )
    summary = place(order_id="key-used")

    assert summary.status == "failed"
    assert summary.failure_point == "process_payment"
    assert "PaymentRejected" in summary.failure_reason
    assert "can only be used with the same parameters" in summary.failure_reason
    assert attempts_of(summary, "process_payment") == [("started", 1), ("failed", 1)]
    assert summary.compensations == ["refund_payment", "release_inventory"]
    assert intents_at(provider, "key-used") == [("canceled", 2000)]
    assert client_of(provider).retrieve(other.id).status == "succeeded"
    assert engine_state()["payments"] == []
    assert_audit_clean()


@sqlite_only
def test_a_key_the_provider_already_holds_for_something_else_is_never_taken_or_refunded(
    provider, prefect_server
):
    """As after `storage reset` with Stripe's books kept: the key of the order's intent was used
    for another order's, which charged. Stripe refuses the creation (`idempotency_error`); the
    step refuses to guess, the refund leaves what the key holds alone, a person must look."""
    old = by_hand(provider, "reused:payment", "old", 700)
    summary = place(order_id="reused")

    assert summary.status == "needs_attention"
    assert summary.failure_point == "process_payment"
    assert "ChargeMismatch" in summary.failure_reason
    assert "can only be used with the same parameters" in summary.failure_reason
    assert attempts_of(summary, "process_payment") == [("started", 1), ("failed", 1)]
    assert intents_at(provider, "old") == [("succeeded", 700)]  # untouched
    assert intents_at(provider, "reused") == []
    assert engine_state()["payments"] == []
    with session_scope() as session:
        assert audit(session) == [
            f"PaymentIntent {old} (succeeded, 700) for order old that FlowForge does not have"
        ]


@sqlite_only
def test_a_process_without_the_provider_refuses_an_order_sent_to_it(
    prefect_server, monkeypatch: pytest.MonkeyPatch
):
    """The embedded provider never books a charge whose request went to Stripe."""
    monkeypatch.setenv("FLOWFORGE_STEP_RETRIES", "0")
    monkeypatch.setenv("FLOWFORGE_COMPENSATION_RETRIES", "0")
    get_settings.cache_clear()
    record_order(
        OrderCreate(
            product_id="SKU-001",
            quantity=2,
            customer_id="c",
            payment_method="tok_visa",
            order_id="sent-away",
        )
    )
    with session_scope() as session:
        session.add(
            ChargeRequest(
                idempotency_key="sent-away:payment",
                order_id="sent-away",
                amount=2000,
                status="in_doubt",
                reached_at=utcnow(),
            )
        )
    summary = run_order("sent-away")

    assert summary.status == "needs_attention"
    assert "ProviderNotConfigured" in summary.failure_reason
    assert "set FLOWFORGE_PAYMENT_PROVIDER=stripe" in summary.failure_reason
    assert engine_state()["payments"] == []


@pytest.mark.e2e
@sqlite_only
def test_an_outage_within_the_budget_loses_no_sale(
    prefect_server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """The provider is down (restarting) when the charge leaves and for two seconds more: no
    step retry is left, yet the attempt keeps knocking — nothing was sent — and charges once."""
    port = free_port()
    use_provider(monkeypatch, f"http://127.0.0.1:{port}")
    monkeypatch.setenv("FLOWFORGE_STEP_RETRIES", "0")
    monkeypatch.setenv("FLOWFORGE_PAYMENT_OUTAGE_SECONDS", "30")
    get_settings.cache_clear()
    results = []
    order = threading.Thread(target=lambda: results.append(place(order_id="outlasts")))
    order.start()
    wait_for(lambda: attempts("outlasts", "process_payment", "started") >= 1)
    time.sleep(2)
    with running_provider(tmp_path / "provider.sqlite3", port=port) as running:
        order.join(timeout=60)
        [summary] = results
        assert summary.status == "completed"
        assert attempts_of(summary, "process_payment") == [("started", 1), ("completed", 1)]
        assert charges_at(running, "outlasts") == [("succeeded", 2000)]
        assert charge_request("outlasts").status == "charged"
        assert_audit_clean()


@pytest.mark.e2e
@sqlite_only
def test_a_refund_that_finds_the_providers_records_gone_needs_attention(
    prefect_server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """Stripe answered the charge, then the double lost its books (restarted on an empty
    database). A cancel cannot refund anything and must not call the order undone."""
    port = free_port()
    use_provider(monkeypatch, f"http://127.0.0.1:{port}")
    with running_provider(tmp_path / "before.sqlite3", port=port):
        assert place(order_id="forgotten").status == "completed"
    with running_provider(tmp_path / "empty.sqlite3", port=port):
        summary = cancel("forgotten").summary

    assert summary.status == "needs_attention"
    assert "ChargeMissing" in summary.failure_reason, summary.failure_reason
    # every compensation ran, in reverse order; the refund ran and failed (nothing to refund)
    assert summary.compensations == ["revert_warehouse", "refund_payment", "release_inventory"]
    undone = {row.name: row.status for row in summary.saga if row.kind == "compensation"}
    assert undone == {
        "release_inventory": "compensated",
        "refund_payment": "failed",
        "revert_warehouse": "compensated",
    }
    [payment] = engine_state()["payments"]
    assert payment["status"] == "charged"  # what FlowForge knows: nobody says it was refunded


@sqlite_only
def test_a_slow_answer_keeps_the_lease(provider, prefect_server, monkeypatch: pytest.MonkeyPatch):
    """The charge's answer takes three leases' time: the order's driver renews its lease
    meanwhile, so no intake may take the order over, and it completes once."""
    monkeypatch.setenv("FLOWFORGE_LEASE_SECONDS", "1")
    get_settings.cache_clear()
    set_faults(provider, {"kind": "slow", "on": CONFIRM, "times": 1}, slow_seconds=3.0)
    results = []
    order = threading.Thread(target=lambda: results.append(place(order_id="slow-answer")))
    order.start()
    wait_for(lambda: charge_request("slow-answer") is not None)
    deadline = time.monotonic() + 2.5
    while time.monotonic() < deadline:
        with session_scope() as session:
            taken = saga_log.claim_pending(session, owner="rival", limit=5, lease_seconds=30)
        assert taken == [], "the order's lease lapsed while its driver waited"
        time.sleep(0.1)
    order.join(timeout=60)
    [summary] = results
    assert summary.status == "completed"
    assert attempts_of(summary, "process_payment") == [("started", 1), ("completed", 1)]
    assert charges_at(provider, "slow-answer") == [("succeeded", 2000)]
    assert_audit_clean()


@pytest.mark.e2e
@sqlite_only
def test_the_key_appears_in_no_output_record_or_page(provider, prefect_server):
    """An order through the double (its first answer dropped), the audit with the double up and
    down, the snapshot, the saga log and the dashboard: the API key is nowhere."""
    set_faults(provider, {"kind": "drop", "on": CONFIRM, "times": 1})
    order = ["--product", "SKU-001", "--quantity", "1", "--customer", "c", "--order-id", "k"]
    fulfil = run_module(
        "flows.fulfill",
        *order,
        *("--payment-method", "tok_visa", "--json"),
        env=child_env(prefect_server),
    )
    assert fulfil.returncode == 0, fulfil.stderr
    outputs = [fulfil.stdout, fulfil.stderr]
    for command in (["snapshot"], ["audit"]):
        done = run_module("storage", *command)
        assert done.returncode == 0, done.stdout + done.stderr
        outputs += [done.stdout, done.stderr]
    provider.process.terminate()
    provider.process.wait(10)
    down = run_module("storage", "audit")
    assert down.returncode == 1 and "cannot reconcile with Stripe" in down.stdout
    outputs += [down.stdout, down.stderr, repr(order_summary("k"))]
    from tests.dashboard.helpers import render

    page = render()
    outputs += [str(element.value) for element in [*page.markdown, *page.dataframe]]
    assert all(API_KEY not in text for text in outputs)


@sqlite_only
def test_a_cart_is_one_payment_intent_of_its_total_and_a_cancel_refunds_it(
    provider, prefect_server
):
    cart = [("SKU-001", 2), ("SKU-002", 1), ("SKU-003", 3)]
    assert place(order_id="cart", lines=cart).status == "completed"
    assert charges_at(provider, "cart") == [("succeeded", 6000)]
    assert cancel("cart").changed
    assert order_summary("cart").status == "cancelled"
    assert charges_at(provider, "cart") == [("refunded", 6000)]
    assert_audit_clean()


@sqlite_only
def test_an_order_charged_by_an_embedded_process_is_not_charged_again_at_stripe(
    provider, prefect_server, monkeypatch: pytest.MonkeyPatch
):
    """A process left on the embedded provider charged the order and died before it was
    recorded as paid; a process set to Stripe takes it over: one charge, the embedded one."""
    from flows.saga import SagaRun
    from tasks.payment import process_payment, refund_payment
    from tasks.steps import STEPS, step_names

    record_order(
        OrderCreate(
            order_id="mixed",
            product_id="SKU-001",
            quantity=1,
            customer_id="c",
            payment_method="tok_visa",
        )
    )
    with session_scope() as session:
        assert saga_log.acquire_lease(session, order_id="mixed", owner="A", lease_seconds=60)
    position = step_names().index("process_payment")
    SagaRun("mixed", "A").enter(position, STEPS[position])  # on the saga log, as the engine does
    args = {"lines": cart(("SKU-001", 1)), "payment_method": "tok_visa", "customer_id": "c"}
    use_embedded(monkeypatch)
    first = process_payment.fn("mixed", "A", **args)
    use_provider(monkeypatch, provider.url)
    assert process_payment.fn("mixed", "A", **args) == first
    assert charges_at(provider, "mixed") == []
    assert refund_payment.fn("mixed", "A") is True
    assert [(p["provider"], p["status"]) for p in engine_state()["payments"]] == [
        ("embedded", "refunded")
    ]
