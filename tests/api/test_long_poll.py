"""`GET /orders/{id}/status?wait=S`: a long poll answered when the order's status changes or the
wait runs out, with one status query per tick for every waiter together."""

from __future__ import annotations

import asyncio
import threading
import time

import anyio.to_thread
import httpx
import pytest

from api import waiting
from api.app import app
from storage import saga_log
from storage.db import session_scope
from storage.settings import get_settings
from tests.api.helpers import ORDER, order_body


def settle(order_id: str, status: str, after: float = 0.0) -> threading.Timer:
    """Set the order's status `after` seconds from now, as the intake would."""

    def write() -> None:
        with session_scope() as session:
            saga_log.update_order(session, order_id=order_id, status=status)

    timer = threading.Timer(after, write)
    timer.start()
    return timer


@pytest.mark.parametrize("status", ["completed", "running"])
def test_a_change_meanwhile_is_answered_at_once(client, status):
    posted = client.post("/orders", json=ORDER).json()
    settle(posted["order_id"], status, after=0.3)
    began = time.monotonic()
    response = client.get(f"/orders/{posted['workflow_id']}/status", params={"wait": 10})
    assert response.status_code == 200
    assert response.json()["status"] == status
    assert 0.3 <= time.monotonic() - began < 2


def test_a_wait_that_runs_out_answers_the_status_as_it_stands(client):
    order_id = client.post("/orders", json=ORDER).json()["order_id"]
    began = time.monotonic()
    response = client.get(f"/orders/{order_id}/status", params={"wait": 0.5})
    assert (response.status_code, response.json()["status"]) == (200, "pending")
    assert 0.5 <= time.monotonic() - began < 2


def test_a_terminal_order_and_an_unknown_one_are_answered_at_once(client):
    order_id = client.post("/orders", json=ORDER).json()["order_id"]
    settle(order_id, "failed").join()
    began = time.monotonic()
    assert client.get(f"/orders/{order_id}/status?wait=30").json()["status"] == "failed"
    assert client.get("/orders/nope/status?wait=30").status_code == 404
    assert time.monotonic() - began < 2


@pytest.mark.parametrize("wait", ["0", "-1", "61", "nan", "inf", "x", ""])
def test_a_bad_wait_is_422_naming_it(client, wait):
    order_id = client.post("/orders", json=ORDER).json()["order_id"]
    response = client.get(f"/orders/{order_id}/status?wait={wait}")
    assert response.status_code == 422
    [error] = response.json()["detail"]
    assert error["loc"] == ["query", "wait"]


def test_the_long_poll_needs_the_token(client, monkeypatch):
    order_id = client.post("/orders", json=ORDER).json()["order_id"]
    monkeypatch.setenv("FLOWFORGE_API_TOKEN", "s3cret")
    get_settings.cache_clear()
    assert client.get(f"/orders/{order_id}/status?wait=5").status_code == 401
    token = {"Authorization": "Bearer s3cret"}
    response = client.get(f"/orders/{order_id}/status?wait=0.1", headers=token)
    assert response.json()["status"] == "pending"


def test_many_waiters_share_one_query_per_tick_and_no_thread(client, monkeypatch):
    waiters = 50
    ids = [
        client.post("/orders", json=order_body(order_id=f"w{i}")).json()["order_id"]
        for i in range(waiters)
    ]
    reads: list[int] = []
    read = waiting.read_statuses

    def counted(order_ids: list[str]) -> dict[str, str]:
        reads.append(len(order_ids))
        return read(order_ids)

    monkeypatch.setattr(waiting, "read_statuses", counted)

    def complete_all() -> None:
        with session_scope() as session:
            for order_id in ids:
                saga_log.update_order(session, order_id=order_id, status="completed")

    async def scenario() -> tuple[list[httpx.Response], list[float], float]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as http:
            began = time.monotonic()
            asks = [
                asyncio.create_task(http.get(f"/orders/{order_id}/status", params={"wait": 10}))
                for order_id in ids
            ]
            while waiters not in reads:  # every waiter is watched, in one query
                await asyncio.sleep(0.01)
            limiter = anyio.to_thread.current_default_thread_limiter()
            busy = []
            for _ in range(30):  # while they wait: no worker thread is taken but the tick's
                busy.append(limiter.borrowed_tokens)
                await asyncio.sleep(0.01)
            await anyio.to_thread.run_sync(complete_all)
            answers = await asyncio.gather(*asks)
            return answers, busy, time.monotonic() - began

    answers, busy, seconds = asyncio.run(scenario())
    assert [a.json()["status"] for a in answers] == ["completed"] * waiters
    assert seconds < 5
    assert max(busy) <= 1
    assert max(reads) == waiters
    assert len(reads) <= seconds / waiting.TICK_SECONDS + 2  # one query per tick, not per waiter


def test_a_stopping_server_lets_every_long_poll_answer_at_once(client):
    """SIGTERM (`python -m api`) calls `release_waiters`: waiting clients get the status as it
    stands instead of holding the shutdown for their whole wait."""
    order_id = client.post("/orders", json=ORDER).json()["order_id"]
    threading.Timer(0.5, waiting.release_waiters).start()
    began = time.monotonic()
    response = client.get(f"/orders/{order_id}/status", params={"wait": 30})
    assert (response.status_code, response.json()["status"]) == (200, "pending")
    assert time.monotonic() - began < 5
