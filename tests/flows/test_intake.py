"""The intake (`python -m flows.intake`): killed mid-burst then swept, two intakes on one
database, SIGTERM drains; and `claim_pending`, which decides who takes an order."""

from __future__ import annotations

import os
import re
import signal
import socket
import threading
import time
from datetime import timedelta
from pathlib import Path
from uuid import UUID, uuid4

import pytest

from deployments.processes import Child, stop
from flows import intake as intake_module
from flows.fulfill import order_summary
from storage import saga_log
from storage.db import session_scope
from storage.models import ACTIVE_STATUSES, TERMINAL_STATUSES, utcnow
from tests.deployments.helpers import start_intake, task_run_state
from tests.flows.helpers import (
    STEP_NAMES,
    assert_side_effects_once,
    engine_state,
    orders_by_id,
    ran_once,
    record_orders,
    sweep,
    wait_until,
)
from tests.support import assert_audit_clean, child_env

LEASE = 2.0
# each order's first charge attempt fails and is retried after 0.5 s: every order is in
# flight for at least that long, so a signal always finds some running
SLOW = {"FAIL_AT": "payment:1", "FLOWFORGE_RETRY_DELAYS": "0.5"}


def intake(api_url: str, workdir: Path, **env: str) -> Child:
    """A ready `python -m flows.intake` in its own process group (ready file in `workdir`)."""
    workdir.mkdir(exist_ok=True)
    return start_intake(child_env(api_url, **env), workdir)


def statuses(order_ids: list[str]) -> dict[str, str]:
    rows = orders_by_id()
    return {oid: rows[oid].status for oid in order_ids}


def all_terminal(order_ids: list[str]) -> bool:
    return set(statuses(order_ids).values()) <= TERMINAL_STATUSES


def known_running(task_run_ids: list[str]) -> bool:
    """Whether the Prefect server has recorded each of these task runs as Running (it records
    them from events, which a killed process may not have sent yet)."""
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    if not task_run_ids:
        return False
    with get_client(sync_client=True) as client:
        try:
            runs = [client.read_task_run(UUID(run_id)) for run_id in task_run_ids]
        except ObjectNotFound:
            return False
    return all(run.state is not None and run.state.is_running() for run in runs)


def all_started_some_running(order_ids: list[str]) -> bool:
    """No order waits any more (each ended or runs in a task run), and two still run."""
    rows = orders_by_id()
    live = [rows[oid] for oid in order_ids if rows[oid].status not in TERMINAL_STATUSES]
    return sum(row.status == "running" for row in live) >= 2 and all(
        row.task_run_id for row in live
    )


def kill(child: Child) -> None:
    """SIGKILL the child's process group (no cleanup at all) and reap it."""
    try:
        os.killpg(child.process.pid, signal.SIGKILL)
        assert child.process.wait(30) == -signal.SIGKILL
    finally:
        stop([child])


def in_flight() -> dict[str, str]:
    """{order id: task run id} of every order left in progress (by a dead intake)."""
    return {
        oid: row.task_run_id
        for oid, row in orders_by_id().items()
        if row.status in ACTIVE_STATUSES and row.task_run_id
    }


def intake_pid_of(task_run_id: str) -> int:
    """The pid in the name (`intake-<pid>-<timestamp>`) of the flow run holding a task run."""
    from prefect.client.orchestration import get_client

    task_run_state(task_run_id)  # recorded (from events) and final
    with get_client(sync_client=True) as client:
        flow_run_id = client.read_task_run(UUID(task_run_id)).flow_run_id
        name = client.read_flow_run(flow_run_id).name
    match = re.fullmatch(r"intake-(\d+)-\d{8}-\d{6}", name)
    assert match, name
    return int(match.group(1))


@pytest.mark.e2e
@pytest.mark.usefixtures("db")
def test_intake_killed_mid_burst_then_swept(prefect_server, tmp_path):
    order_ids = record_orders("burst", 30)
    # the last ten (claimed last: oldest first) fail their charge three times, so they are
    # still running once every order has started
    dying = intake(
        prefect_server,
        tmp_path,
        FLOWFORGE_LEASE_SECONDS=str(LEASE),
        **SLOW | {"FAIL_AT": "payment:1,payment:3@burst-2?"},
    )
    try:
        wait_until(lambda: all_started_some_running(order_ids), "every order started")
    finally:
        kill(dying)
    killed_at = time.monotonic()
    orphans = in_flight()
    assert orphans, "the kill found no order in flight"
    assert len(orphans) < len(order_ids), "the kill found no order ended"
    # the server records task runs from events, seconds behind under load
    wait_until(lambda: known_running(list(orphans.values())), "Prefect to record them", 30)
    time.sleep(max(0.0, killed_at + LEASE + 0.3 - time.monotonic()))  # every lease lapsed

    report = sweep(prefect_server)
    assert sorted(report["orders"]["completed"]) == sorted(orphans), report

    for oid in order_ids:
        summary = order_summary(oid)
        assert summary.status == "completed", summary
        assert summary.steps_completed == STEP_NAMES
        assert summary.compensations == []
        assert ran_once(oid), summary.events
    payments = [p["order_id"] for p in engine_state()["payments"]]
    assert sorted(payments) == sorted(order_ids)  # one charge per order, nobody twice
    assert_side_effects_once(set(order_ids))
    assert_audit_clean()
    for oid, task_run_id in orphans.items():
        assert task_run_state(task_run_id, prefect_server) == ("CRASHED", "Crashed"), oid


@pytest.mark.e2e
@pytest.mark.usefixtures("db")
def test_takeover_and_sweep_mark_crashed_past_a_task_run_prefect_never_recorded(
    prefect_server, tmp_path
):
    """An intake killed within its first second leaves a task run id Prefect never heard of
    (its events died with it): the intake that takes the order over, and later the sweep,
    must still mark the other task runs Crashed."""
    (early,) = record_orders("early", 1)
    env = {"FLOWFORGE_LEASE_SECONDS": str(LEASE), "FLOWFORGE_INTAKE_CONCURRENCY": "1"}
    first = intake(prefect_server, tmp_path / "first", CRASH_AT="inventory:before", **env)
    wait_until(lambda: first.process.poll() is not None, "the first intake to crash", 60)
    stop([first])
    assert first.process.returncode == -signal.SIGKILL
    never_recorded = orders_by_id()[early].task_run_id
    assert never_recorded and not known_running([never_recorded])
    time.sleep(LEASE)  # the dead intake's lease lapsed: the next intake takes `early` first
    late = record_orders("late", 2)
    # the late orders keep failing their charge (every 0.5 s, for 50 s: however long Prefect
    # takes to record the run) until the intake is killed
    stuck = SLOW | {"FAIL_AT": "payment:100@late-*", "FLOWFORGE_STEP_RETRIES": "100"}
    second = intake(prefect_server, tmp_path / "second", **env | stuck)
    try:  # it takes the dead intake's order over (oldest first), then gets stuck
        wait_until(lambda: order_summary(early).status == "completed", "the takeover")
        wait_until(lambda: known_running(list(in_flight().values())), "Prefect to see it")
    finally:
        kill(second)
    orphans = in_flight()
    assert list(orphans) == [late[0]]
    time.sleep(LEASE)

    report = sweep(prefect_server)
    assert report["orders"] == {"completed": late}, report
    assert task_run_state(orphans[late[0]], prefect_server, timeout=5) == ("CRASHED", "Crashed")
    assert_audit_clean()


@pytest.mark.e2e
@pytest.mark.usefixtures("database")
def test_a_live_intake_takes_over_a_killed_intakes_orders(prefect_server, tmp_path):
    """Two intakes share a burst; one is killed with orders in flight. The other finishes
    them within about one lease of the kill, with no sweep: each order once, audit clean."""
    lease = 3.0
    env = {"FLOWFORGE_LEASE_SECONDS": str(lease), "FLOWFORGE_INTAKE_CONCURRENCY": "4"}
    dying = intake(prefect_server, tmp_path / "dying", **env | SLOW)
    survivor = None
    try:
        order_ids = record_orders("burst", 40)  # SKU-003: 50 in stock
        wait_until(lambda: _driven_by(dying) >= 2, "the doomed intake to be driving orders")
        # the survivor joins once the doomed one is busy (were both started together, a slow
        # Prefect server could let one intake take the whole burst before the other began)
        survivor = intake(prefect_server, tmp_path / "survivor", **env | SLOW)
        wait_until(lambda: _driven_by(dying) >= 2, "the doomed intake to be driving orders")
        kill(dying)
        killed_at = time.monotonic()
        orphans = in_flight_of(_owner_prefix(dying))
        assert orphans, "the kill found no order in flight"
        wait_until(lambda: all_terminal(list(orphans)), "the survivor to take them over", 60)
        settled_after = time.monotonic() - killed_at
        wait_until(lambda: all_terminal(order_ids), "the survivor to finish everything", 120)
        # the survivor marks every run Prefect knows Crashed, those it records late included
        # (its recorder can be seconds behind the dead intake's events); the survivor still runs
        states = {oid: task_run_state(run, prefect_server, 10) for oid, run in orphans.items()}
    finally:
        stop([child for child in (survivor, dying) if child is not None])
    # the last orphan settled within about a lease of the kill (the sweep would wait 60 s)
    assert settled_after < lease + 5, settled_after
    for oid in order_ids:
        summary = order_summary(oid)
        assert summary.status == "completed", summary
        assert summary.compensations == []
    assert_side_effects_once(set(order_ids))
    payments = [p["order_id"] for p in engine_state()["payments"]]
    assert sorted(payments) == sorted(order_ids)  # one charge per order, nobody twice
    assert_audit_clean()
    for oid, state in states.items():  # never recorded: the events died with the intake
        assert state in {("CRASHED", "Crashed"), ("", "")}, (oid, state)


@pytest.mark.e2e
@pytest.mark.usefixtures("db", "prefect_server")
def test_a_taken_over_run_prefect_records_late_is_still_marked_crashed(monkeypatch):
    """Under load Prefect's recorder can be seconds behind a dead intake's events: a run it
    had not recorded at the takeover is marked Crashed at a later look, once it has."""
    from prefect import task
    from prefect.client.orchestration import get_client
    from prefect.states import Running

    monkeypatch.setattr(intake_module, "UNRECORDED_RETRY_SECONDS", 0)
    late, never = str(uuid4()), str(uuid4())
    source = intake_module.ClaimedOrders()
    source.mark_crashed([late, never])
    assert set(source.unrecorded) == {late, never}
    with get_client(sync_client=True) as client:  # the dead intake's events arrive
        client.create_task_run(
            task(name="fulfill-order")(lambda: None), None, "late", id=UUID(late), state=Running()
        )
    assert source.take(10) == []  # the next look marks it; the other is still awaited
    assert task_run_state(late, timeout=5) == ("CRASHED", "Crashed")
    assert set(source.unrecorded) == {never}
    source.unrecorded[never] = time.monotonic()  # its minute is over: given up
    source.take(10)
    assert source.unrecorded == {}


def _owner_prefix(child: Child) -> str:
    return f"intake:{socket.gethostname()}:{child.process.pid}:"


def in_flight_of(owner_prefix: str) -> dict[str, str]:
    """{order id: task run id} of the orders in progress under a lease of `owner_prefix`."""
    return {
        oid: row.task_run_id
        for oid, row in orders_by_id().items()
        if row.status in ACTIVE_STATUSES
        and row.task_run_id
        and (row.lease_owner or "").startswith(owner_prefix)
    }


def _driven_by(child: Child) -> int:
    return len(in_flight_of(_owner_prefix(child)))


@pytest.mark.e2e
@pytest.mark.usefixtures("db")
def test_two_intakes_share_one_database(prefect_server, tmp_path):
    intakes = [intake(prefect_server, tmp_path / name) for name in ("a", "b")]
    try:
        scarce = record_orders("scarce", 15, product_id="SKU-002")  # 10 units in stock
        plenty = record_orders("w", 10, product_id="SKU-001") + record_orders("g", 15)
        order_ids = scarce + plenty
        wait_until(lambda: all_terminal(order_ids), "every order to end")
    finally:
        stop(intakes)
    assert [child.process.returncode for child in intakes] == [0, 0]

    final = statuses(order_ids)
    completed = {oid for oid, status in final.items() if status == "completed"}
    assert completed >= set(plenty)
    assert len(completed & set(scarce)) == 10
    for oid in set(scarce) - completed:
        summary = order_summary(oid)
        assert summary.status == "failed", summary
        assert summary.compensations == []  # refused before any side effect
    gadget = next(p for p in engine_state()["inventory"] if p["product_id"] == "SKU-002")
    assert (gadget["available"], gadget["reserved"]) == (0, 10)
    assert_side_effects_once(completed)
    assert_audit_clean()

    pids = {intake_pid_of(order_summary(oid).task_run_id) for oid in order_ids}
    assert pids == {child.process.pid for child in intakes}


@pytest.mark.e2e
@pytest.mark.usefixtures("db")
def test_sigterm_drains_and_leaves_the_rest_pending(prefect_server, tmp_path):
    order_ids = record_orders("drain", 20)
    first = intake(prefect_server, tmp_path / "first", FLOWFORGE_INTAKE_CONCURRENCY="4", **SLOW)
    try:
        wait_until(lambda: "running" in statuses(order_ids).values(), "an order to be running", 60)
        first.process.send_signal(signal.SIGTERM)
        assert first.process.wait(60) == 0
    finally:
        stop([first])

    rows = orders_by_id()
    assert not {row.status for row in rows.values()} & {"running", "compensating"}
    left = {oid for oid, row in rows.items() if row.status == "pending"}
    assert left, "the drain ran every order: nothing shows that it stopped claiming"
    assert len(left) < len(order_ids)
    for oid in left:
        assert (rows[oid].lease_owner, rows[oid].task_run_id) == (None, None), oid
    assert {row.status for oid, row in rows.items() if oid not in left} == {"completed"}

    second = intake(prefect_server, tmp_path / "second")
    try:
        wait_until(lambda: all_terminal(order_ids), "the second intake to finish")
    finally:
        stop([second])
    assert second.process.returncode == 0
    assert set(statuses(order_ids).values()) == {"completed"}
    assert_side_effects_once(set(order_ids))
    assert_audit_clean()


def claim_all(owner: str, start: threading.Barrier, claimed: list[str]) -> None:
    """Claim two at a time until nothing is left (after everyone started at once)."""
    start.wait()
    while True:
        with session_scope() as session:
            batch = saga_log.claim_pending(session, owner=owner, limit=2, lease_seconds=30)
        if not batch:
            return
        claimed.extend(claim.order_id for claim in batch)


@pytest.mark.usefixtures("db")
def test_claim_pending_gives_each_order_to_one_owner():
    free = record_orders("free", 16)
    held, expired, running, done, mine = (record_orders(name, 1)[0] for name in "hxrdm")
    past, future = utcnow() - timedelta(seconds=1), utcnow() + timedelta(seconds=30)
    with session_scope() as session:
        for order_id, values in {
            held: {"lease_owner": "other", "lease_expires_at": future},
            expired: {"lease_owner": "dead", "lease_expires_at": past},
            running: {
                "status": "running",
                "lease_owner": "dead",
                "lease_expires_at": past,
                "task_run_id": "run-of-dead",
            },
            done: {"status": "failed"},
            mine: {"status": "running", "lease_owner": "a", "lease_expires_at": past},
        }.items():
            saga_log.update_order(session, order_id=order_id, **values)

    claims: dict[str, list[str]] = {"a": [], "b": []}
    start = threading.Barrier(len(claims))
    threads = [
        threading.Thread(target=claim_all, args=(owner, start, claimed))
        for owner, claimed in claims.items()
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)

    taken = claims["a"] + claims["b"]
    # each claimable order exactly once: an expired lease is taken over, in progress or not,
    # except by its own holder (one of its threads may still drive it)
    assert sorted(taken) == sorted([*free, expired, running, mine])
    assert mine in claims["b"]
    rows = orders_by_id()
    for owner, claimed in claims.items():
        assert {rows[oid].lease_owner for oid in claimed} <= {owner}
    assert rows[held].lease_owner == "other"
    with session_scope() as session:  # every lease is live now: nothing more to take
        assert saga_log.claim_pending(session, owner="c", limit=100, lease_seconds=30) == []


@pytest.mark.usefixtures("db")
def test_a_claim_names_the_run_it_takes_an_order_over_from():
    fresh, pending, running, reopened = (record_orders(n, 1)[0] for n in ("f", "p", "r", "o"))
    past = utcnow() - timedelta(seconds=1)
    with session_scope() as session:
        saga_log.update_order(
            session,
            order_id=running,
            status="running",
            lease_owner="dead",
            lease_expires_at=past,
            task_run_id="run-of-dead",
        )
        saga_log.update_order(  # a run killed between taking the order and its first step
            session,
            order_id=pending,
            lease_owner="dead",
            lease_expires_at=past,
            task_run_id="run-before-its-first-step",
        )
        saga_log.update_order(
            session, order_id=reopened, status="compensating", task_run_id="finished-run"
        )
        claims = saga_log.claim_pending(session, owner="live", limit=10, lease_seconds=30)
    assert {claim.order_id: claim.abandoned_run for claim in claims} == {
        fresh: None,
        pending: "run-before-its-first-step",
        running: "run-of-dead",
        reopened: "finished-run",  # marking skips a run that already ended
    }
