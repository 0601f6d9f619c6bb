"""The lease keeper: one thread renews every lease the process holds, one statement per owner
per round; a lease another process took over is left alone."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest

from flows.fulfill import record_order
from flows.saga import LeaseKeeper
from storage import saga_log
from storage.db import session_scope
from storage.models import OrderCreate, utcnow

pytestmark = pytest.mark.usefixtures("db")
LEASE = 0.6


def leased(order_id: str, owner: str) -> None:
    order = OrderCreate(
        product_id="SKU-001", quantity=1, customer_id="c", payment_method="t", order_id=order_id
    )
    record_order(order)
    with session_scope() as session:
        assert saga_log.acquire_lease(session, order_id=order_id, owner=owner, lease_seconds=LEASE)


def seconds_left(order_id: str) -> float:
    with session_scope(readonly=True) as session:
        expires = saga_log.get_order(session, order_id=order_id).lease_expires_at
    return (expires.replace(tzinfo=None) - utcnow().replace(tzinfo=None)).total_seconds()


def test_held_leases_outlive_their_length_and_lapse_once_let_go():
    keeper = LeaseKeeper()
    for order_id in ("kept-1", "kept-2"):
        leased(order_id, "me")
    with keeper.kept("kept-1", "me", LEASE), keeper.kept("kept-2", "me", LEASE):
        time.sleep(3 * LEASE)
        assert seconds_left("kept-1") > 0 and seconds_left("kept-2") > 0
    time.sleep(1.5 * LEASE)
    assert seconds_left("kept-1") < 0 and seconds_left("kept-2") < 0
    assert threading.active_count() < 20  # one keeper thread, not one per order


def test_a_lease_taken_over_is_not_renewed_for_the_old_owner():
    keeper = LeaseKeeper()
    leased("taken", "old")
    with keeper.kept("taken", "old", LEASE):
        time.sleep(1.5 * LEASE)  # lapsed? no: kept
        assert seconds_left("taken") > 0
        with session_scope() as session:  # a takeover, as after the old owner froze
            saga_log.update_order(
                session,
                order_id="taken",
                lease_owner="new",
                lease_expires_at=utcnow() + timedelta(seconds=100),
            )
        time.sleep(LEASE)
        assert seconds_left("taken") > 90  # the old owner's rounds did not touch it
