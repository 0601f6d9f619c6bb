"""The engine the intake and the batch share: each order is one `fulfill-order` task run (its
steps and compensations nested inside it), submitted with bounded concurrency from a rotating
flow run — a new one every `rotate_orders` orders or `rotate_seconds`, because a flow run's
memory and graph grow with its tasks. One Prefect client and one flow run serve many orders,
which is what makes this ~10x cheaper than a flow run (or a process) per order."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from prefect import Flow, flow, task
from prefect.cache_policies import NO_CACHE
from prefect.exceptions import TerminationSignal
from prefect.futures import PrefectFuture
from prefect.runtime import task_run
from prefect.states import State
from prefect.task_runners import ThreadPoolTaskRunner

from flows.fulfill import order_summary
from flows.outcome import (
    PREFECT_ERRORS,
    completed_state,
    handed_over,
    prefect_state,
    publish_artifact,
    publish_run_table,
    status_of_state,
)
from flows.saga import settle_order
from storage.models import TERMINAL_STATUSES, OrderStatus
from storage.settings import get_settings

ROTATE_ORDERS = 1000
ROTATE_SECONDS = 120.0
IDLE_SECONDS = 10.0
WAIT_SECONDS = 0.5
RETRY_SECONDS = 5.0
RUN_LOGGERS = ("prefect.task_runs", "prefect.flow_runs")
logger = logging.getLogger(__name__)
# the task run of one order (the bench's Prefect floor declares its no-op order the same way)
ORDER_TASK = {
    "name": "fulfill-order",
    "task_run_name": "{order_id}",
    "cache_policy": NO_CACHE,
    "persist_result": False,
}


@task(**ORDER_TASK)
def fulfill_order_task(order_id: str, lease_owner: str) -> State:
    """One order, already leased to `lease_owner`, driven to its end (or, when a cancellation
    was requested, compensated) as one task run. An order another driver holds is left to
    it; one that another driver settled meanwhile reports how it ended. The order's summary
    is read once, and not at all when it completed."""
    status = settle_order(order_id, lease_owner, task_run_id=str(task_run.get_id()))
    if status == OrderStatus.COMPLETED:
        return completed_state(order_id)
    summary = order_summary(order_id)
    if status is None:
        ended = summary.status in TERMINAL_STATUSES
        return prefect_state(summary) if ended else handed_over(summary)
    publish_artifact(summary)
    return prefect_state(summary)


class OrderSource(Protocol):
    """Where the pipeline's orders come from; every id it hands out is leased to `owner`."""

    owner: str

    def take(self, limit: int) -> list[str]:
        """Up to `limit` order ids ready to run now (may be empty)."""
        ...

    def exhausted(self) -> bool:
        """True when no order will ever come again (the end of a file)."""
        ...

    def give_back(self, order_ids: list[str]) -> None:
        """Orders taken but not run (Prefect refused): make them available again."""
        ...


@dataclass
class Pipeline:
    """Runs a source's orders, `concurrency` at a time, until it is exhausted or `stop` is set;
    `on_done(order_id, status)` hears of every order that ended."""

    source: OrderSource
    flow_name: str
    run_name: Callable[[], str]
    concurrency: int
    poll_seconds: float = 0.1
    rotate_orders: int = ROTATE_ORDERS
    rotate_seconds: float = ROTATE_SECONDS
    idle_seconds: float = IDLE_SECONDS
    on_done: Callable[[str, str], None] | None = None
    stop: threading.Event = field(default_factory=threading.Event)
    _in_flight: set[PrefectFuture] = field(default_factory=set, init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False)
    _slot_freed: threading.Event = field(default_factory=threading.Event, init=False)
    _ended: list[tuple[str, str]] = field(default_factory=list, init=False)  # (order, status)

    def run(self) -> None:
        """Open a flow run whenever orders are waiting; return once stopped or exhausted. When
        Prefect cannot take the run, the orders are handed back and tried again later."""
        window = self._window_flow()
        while not self._finished():
            first = self.source.take(self.concurrency)
            if not first:
                self.stop.wait(self.poll_seconds)
                continue
            try:
                window(first)
            except PREFECT_ERRORS as exc:
                logger.warning("Prefect did not take a run (%s); retrying", exc)
                self.source.give_back(first)
                self.stop.wait(RETRY_SECONDS)

    def _finished(self) -> bool:
        return self.stop.is_set() or self.source.exhausted()

    def _window_flow(self) -> Flow:
        return flow(
            name=self.flow_name,
            flow_run_name=self.run_name,
            task_runner=ThreadPoolTaskRunner(max_workers=self.concurrency),
            persist_result=False,
            validate_parameters=False,
        )(self._window)

    def _window(self, first: list[str]) -> dict[str, int]:
        """One flow run: submit orders until a rotation bound, idleness, stop or exhaustion;
        then wait for those in flight (they are never abandoned) and attach the run's table
        of orders."""
        with self._lock:
            self._ended = []
        started = last_busy = time.monotonic()
        submitted = 0
        claimed = first
        while True:
            for order_id in claimed:
                self._submit(order_id)
            submitted += len(claimed)
            now = time.monotonic()
            if claimed or self._in_flight:
                last_busy = now
            if (
                self._finished()
                or submitted >= self.rotate_orders
                or now - started >= self.rotate_seconds
                or now - last_busy >= self.idle_seconds
            ):
                break
            free = min(self.concurrency - len(self._in_flight), self.rotate_orders - submitted)
            claimed = self.source.take(free) if free > 0 else []
            if not claimed:  # woken early when an order ends
                self._slot_freed.wait(self.poll_seconds if free > 0 else WAIT_SECONDS)
                self._slot_freed.clear()
        self._drain()
        publish_run_table(self._ended)
        return {"orders": submitted}

    def _submit(self, order_id: str) -> None:
        future = fulfill_order_task.submit(order_id, self.source.owner)
        with self._lock:
            self._in_flight.add(future)
        future.add_done_callback(lambda done, oid=order_id: self._finish(oid, done))

    def _finish(self, order_id: str, future: PrefectFuture) -> None:
        future.wait()  # resolved already: keeps the final state without asking the server
        status = status_of_state(future.state)
        with self._lock:
            self._in_flight.discard(future)
            self._ended.append((order_id, status))
        self._slot_freed.set()
        if self.on_done is not None:
            self.on_done(order_id, status)

    def _drain(self) -> None:
        """Wait until every submitted order ended and was reported."""
        while True:
            with self._lock:
                waiting = list(self._in_flight)
            if not waiting:
                return
            for future in waiting:
                future.wait()
            self._slot_freed.wait(0.01)  # done callbacks run just after the futures resolve


def run_until_stopped(pipeline: Pipeline) -> None:
    """Run the pipeline in a thread (Prefect's flow engine only traps SIGTERM in the main
    thread) while this thread waits; a signal sets `stop` and the pipeline drains. Prefect's
    per-run log lines ("Finished in state …", several an order) are kept to
    `FLOWFORGE_RUN_LOG_LEVEL` (WARNING): the states and the saga artifact say it all."""
    for name in RUN_LOGGERS:
        logging.getLogger(name).setLevel(get_settings().run_log_level)
    failures: list[BaseException] = []

    def run() -> None:
        try:
            pipeline.run()
        except BaseException as exc:  # handed to the waiting thread, which raises it
            failures.append(exc)

    worker = threading.Thread(target=run, name="pipeline")
    worker.start()
    while worker.is_alive():
        try:
            worker.join(WAIT_SECONDS)
        except TerminationSignal:  # Prefect's SIGTERM bridge when run as a deployment
            pipeline.stop.set()
    if failures:
        raise failures[0]
