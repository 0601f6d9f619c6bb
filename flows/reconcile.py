"""The recovery sweep: every non-terminal order whose lease went stale is driven to a terminal
status (resumed forward, or its pending compensations run); `--retry` settles a
`needs_attention` order. Safe to run from several processes at once: leases decide.
`python -m flows.reconcile [--stale-after SECONDS] [--retry ORDER_ID]`."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import uuid
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from prefect import flow, get_run_logger
from prefect.client.orchestration import get_client
from prefect.exceptions import ObjectNotFound
from prefect.runtime import flow_run
from prefect.states import Crashed

from flows.cli import non_negative_seconds, run_command, valid_order_id
from flows.fulfill import fulfill_order, order_summary
from flows.outcome import HANDED_OVER, PREFECT_ERRORS, Outcome, publish_artifact, run_locally
from flows.saga import drive_order
from storage import saga_log
from storage.arguments import OneLineParser
from storage.db import session_scope
from storage.models import ACTIVE_STATUSES, OrderStatus

DEFAULT_STALE_AFTER = 60.0
logger = logging.getLogger(__name__)


def _retry(order_id: str, owner: str) -> Outcome:
    before = order_summary(order_id)
    if before.status != OrderStatus.NEEDS_ATTENTION:
        return Outcome(
            before,
            False,
            f"order {order_id} is {before.status}; only needs_attention is retried",
        )
    status = drive_order(
        order_id,
        owner,
        statuses=frozenset({OrderStatus.NEEDS_ATTENTION}),
        before={"status": OrderStatus.COMPENSATING},
    )
    summary = order_summary(order_id)
    if status is None:
        return Outcome(summary, False, f"order {order_id} is being retried elsewhere")
    return Outcome(summary, True, f"order {order_id} retried: now {summary.status}")


def mark_crashed(task_run_ids: list[str]) -> list[str]:
    """The `fulfill-order` task runs of orders whose intake died stay Running for ever (task
    runs have no heartbeat): whoever takes the orders over (an intake, the sweep) marks them
    Crashed. Returns the runs Prefect has not recorded: its recorder may still be behind the
    dead process's events (the caller tries again later), or they died with it. A run Prefect
    cannot be told about now stays as it is (logged)."""
    unrecorded: list[str] = []
    if not task_run_ids:
        return unrecorded
    with get_client(sync_client=True) as client:
        for task_run_id in task_run_ids:
            try:
                run = client.read_task_run(UUID(task_run_id))
                if run.state is None or not run.state.is_final():
                    client.set_task_run_state(
                        UUID(task_run_id),
                        Crashed(message="its process died; the recovery sweep took it over"),
                        force=True,
                    )
            except ObjectNotFound:
                unrecorded.append(task_run_id)
            except PREFECT_ERRORS as exc:  # the others are still marked
                logger.warning("could not mark task run %s crashed: %s", task_run_id, exc)
    return unrecorded


def _sweep(stale_after: float) -> dict[str, Any]:
    with session_scope() as session:
        orders = saga_log.stale_orders(session, stale_after=stale_after)
    stale = [order.order_id for order in orders]
    unrecorded = mark_crashed([order.task_run_id for order in orders if order.task_run_id])
    tally: dict[str, list[str]] = {}
    for order_id in stale:
        state = fulfill_order(order_id, return_state=True)
        outcome = "skipped" if state.name == HANDED_OVER else order_summary(order_id).status
        if outcome in ACTIVE_STATUSES:  # its run broke off (e.g. the database went away)
            get_run_logger().warning("order %s left %s: %s", order_id, outcome, state.message)
            outcome = "unfinished"
        tally.setdefault(outcome, []).append(order_id)
    mark_crashed(unrecorded)  # once more: Prefect may have recorded them meanwhile
    return {"swept": len(stale), "stale_after": stale_after, "orders": tally}


def _run_name() -> str:
    order_id = flow_run.parameters.get("retry_order_id")
    return f"retry-{order_id}" if order_id else f"sweep-{datetime.now(UTC):%Y%m%d-%H%M%S}"


@flow(name="reconcile", flow_run_name=_run_name, persist_result=False)
def reconcile(stale_after: float = DEFAULT_STALE_AFTER, retry_order_id: str | None = None) -> dict:
    """One recovery sweep, or the retry of one `needs_attention` order."""
    if retry_order_id is None:
        return _sweep(stale_after)
    run_id = str(flow_run.get_id() or uuid.uuid4())
    outcome = _retry(retry_order_id, owner=f"retry:{run_id}")
    publish_artifact(outcome.summary)
    return {"summary": outcome.summary, "changed": outcome.changed, "message": outcome.message}


def request_retry(order_id: str) -> Outcome:
    """Reopen a `needs_attention` order's pending compensations for the intake to re-run."""
    with session_scope() as session:
        reopened = saga_log.reopen_compensations(session, order_id=order_id)
    summary = order_summary(order_id)
    if reopened:
        return Outcome(summary, True, f"retry of order {order_id} requested")
    if summary.status == OrderStatus.COMPENSATING:
        return Outcome(summary, False, f"order {order_id} is already compensating")
    return Outcome(
        summary, False, f"order {order_id} is {summary.status}; only needs_attention is retried"
    )


def retry_order(order_id: str) -> Outcome:
    """Re-run the pending compensations of a `needs_attention` order in this process."""
    order_summary(order_id)  # raises OrderNotFound before a flow run is made
    return Outcome(**run_locally(reconcile, retry_order_id=order_id))


def main(argv: list[str] | None = None) -> int:
    parser = OneLineParser(prog="python -m flows.reconcile", description=__doc__)
    parser.add_argument("--stale-after", type=non_negative_seconds, default=DEFAULT_STALE_AFTER)
    parser.add_argument("--retry", type=valid_order_id, metavar="ORDER_ID")
    return run_command(parser, sweep_or_retry, argv)


def sweep_or_retry(args: argparse.Namespace) -> int:
    if args.retry:
        outcome = retry_order(args.retry)
        result = {
            "retried": args.retry,
            "status": outcome.summary.status,
            "changed": outcome.changed,
            "message": outcome.message,
        }
    else:
        result = run_locally(reconcile, stale_after=args.stale_after)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
