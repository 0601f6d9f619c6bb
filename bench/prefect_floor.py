"""`python -m bench.prefect_floor ORDERS_FILE [--concurrency N]`: mode (f) of `python -m bench`,
Prefect's floor. The shape of FlowForge's engine (flows/pipeline.py) with nothing inside: one
flow run on a `ThreadPoolTaskRunner(N)`, each order one `fulfill-order` task run (at most N in
flight) that calls one no-op task run per step of the step table (`tasks.steps.STEPS`), each
task declared with the engine's options (no cache, no persisted result, the steps' retries).
Nothing is written to FlowForge's database, no order fails, no artifact is published.
Prints one JSON object: each order's latency (submitted → its task's body ended, seconds)
and the orders by final state."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from prefect import Task, flow, task
from prefect.cache_policies import NO_CACHE
from prefect.futures import PrefectFuture
from prefect.states import State
from prefect.task_runners import ThreadPoolTaskRunner

from bench.workload import read_orders
from flows.pipeline import ORDER_TASK, RUN_LOGGERS
from storage.models import OrderCreate
from storage.settings import get_settings
from tasks.saga_task import retry_unless_final
from tasks.steps import STEPS

OWNER = f"prefect-floor:{os.getpid()}"
ORDERS: dict[str, OrderCreate] = {}  # the orders' fields, by id: what the engine reads from storage
ENDED: dict[str, float] = {}  # when each order's task body ended (perf_counter)


def _no_op(name: str) -> Callable[..., None]:
    """A step body that does nothing, named after the step (as the engine's are: each step
    its own task key)."""

    def run(order_id: str, lease_owner: str, **arguments: Any) -> None:
        """Nothing: the floor's step."""

    run.__name__ = run.__qualname__ = name.replace("-", "_")
    return run


def step_task(name: str) -> Task[..., None]:
    """A no-op task declared as `tasks.saga_task.saga_task` declares step `name`, with the
    retries the settings give now (as `with_current_retries` does); no `on_failure` hook, which
    would write to FlowForge's database and never fires here."""
    settings = get_settings()
    return task(
        name=name,
        task_run_name=name,
        retries=settings.step_retries,
        retry_delay_seconds=settings.retry_delays,
        retry_condition_fn=retry_unless_final,
        cache_policy=NO_CACHE,
        persist_result=False,
    )(_no_op(name))


STEP_TASKS = tuple(step_task(step.name) for step in STEPS)


@task(**ORDER_TASK)
def fulfill_order_floor(order_id: str, lease_owner: str) -> None:
    """One order as one task run: each step's no-op task run nested in it, in saga order."""
    order = ORDERS[order_id]
    for step, step_run in zip(STEPS, STEP_TASKS, strict=True):
        step_run(order_id, lease_owner, **step.args(order))  # type: ignore[arg-type]
    ENDED[order_id] = time.perf_counter()


def state_name(state: State | None) -> str:
    """An order's final state as the bench counts it: `completed`, else the state's type."""
    if state is None:
        return "missing"
    return "completed" if state.is_completed() else state.type.value.lower()


def run_orders(order_ids: list[str], concurrency: int) -> tuple[dict[str, int], list[float]]:
    """Run the orders in one flow run, at most `concurrency` in flight; (orders by final
    state, each order's latency)."""
    slots = threading.Semaphore(concurrency)
    submitted: dict[str, float] = {}
    futures: list[PrefectFuture] = []

    def window(orders: int) -> None:
        """The flow run: submit each order once a slot is free, then wait for them all."""
        for order_id in order_ids:
            slots.acquire()
            submitted[order_id] = time.perf_counter()
            future = fulfill_order_floor.submit(order_id, OWNER)
            future.add_done_callback(lambda _done: slots.release())
            futures.append(future)
        for future in futures:
            future.wait()

    flow_run = flow(
        name="prefect-floor",
        flow_run_name=f"prefect-floor-{datetime.now(UTC):%Y%m%d-%H%M%S}",
        task_runner=ThreadPoolTaskRunner(max_workers=concurrency),
        persist_result=False,
        validate_parameters=False,
    )(window)
    flow_run(len(order_ids))
    counts = Counter(state_name(future.state) for future in futures)
    latencies = [ENDED[oid] - submitted[oid] for oid in order_ids if oid in ENDED]
    return dict(counts), latencies


def main(argv: list[str] | None = None) -> int:
    """Run the file's orders through the floor; exit 0 when every one completed, else 1."""
    parser = argparse.ArgumentParser(prog="python -m bench.prefect_floor", description=__doc__)
    parser.add_argument("orders", type=Path)
    parser.add_argument("--concurrency", type=int, default=get_settings().intake_concurrency)
    args = parser.parse_args(argv)
    for name in RUN_LOGGERS:  # as the batch does: Prefect's per-run log lines kept to WARNING
        logging.getLogger(name).setLevel(get_settings().run_log_level)
    specs = read_orders(args.orders)
    ORDERS.update({spec.order_id: OrderCreate(**asdict(spec)) for spec in specs})
    counts, latencies = run_orders([spec.order_id for spec in specs], args.concurrency)
    print(json.dumps({"counts": counts, "latencies": latencies}))
    return 0 if counts == {"completed": len(specs)} else 1


if __name__ == "__main__":
    sys.exit(main())
