"""Cancellation: an in-flight order stops at its next step boundary and is compensated; a
completed order is compensated in full; both end `cancelled`. `python -m flows.cancel ID`."""

from __future__ import annotations

import argparse
import json
import sys
import time
import uuid

from prefect import flow
from prefect.runtime import flow_run

from flows.cli import run_command, valid_order_id
from flows.fulfill import order_summary
from flows.outcome import (
    ExitCode,
    Outcome,
    exit_code,
    human_summary,
    publish_artifact,
    run_locally,
)
from flows.saga import settle_order
from storage import saga_log
from storage.arguments import OneLineParser
from storage.db import session_scope
from storage.models import SETTLED_STATUSES, OrderStatus
from storage.settings import get_settings

POLL_SECONDS = 0.25


def request_cancel(order_id: str) -> Outcome:
    """Only flag the order (and reopen the compensations of one that needs attention):
    whoever drives it stops at the next step boundary; the intake takes a completed one."""
    with session_scope() as session:
        order = saga_log.get_order(session, order_id=order_id)
        if order.status in SETTLED_STATUSES:
            flagged = False
        else:
            flagged = saga_log.request_cancel(session, order_id=order_id)
            saga_log.reopen_compensations(session, order_id=order_id)
    summary = order_summary(order_id)
    if summary.status in SETTLED_STATUSES:
        return Outcome(summary, False, f"order {order_id} is already {summary.status}")
    message = "cancellation requested" if flagged else "cancellation was already requested"
    return Outcome(summary, flagged, message)


def _cancel(order_id: str, owner: str) -> Outcome:
    requested = request_cancel(order_id)
    if requested.summary.status in SETTLED_STATUSES:
        return requested
    deadline = time.monotonic() + 2 * get_settings().lease_seconds
    drove = False
    while True:
        status = order_summary(order_id).status
        if status in SETTLED_STATUSES or (status == OrderStatus.NEEDS_ATTENTION and drove):
            break
        driven = settle_order(order_id, owner)
        drove |= driven is not None
        if driven is None:  # a live process drives it and will see the flag; wait for it
            if time.monotonic() > deadline:
                break
            time.sleep(POLL_SECONDS)
    summary = order_summary(order_id)
    if summary.status == OrderStatus.CANCELLED:
        return Outcome(summary, True, f"order {order_id} cancelled and compensated")
    return Outcome(summary, True, f"order {order_id} is {summary.status} after cancellation")


@flow(name="cancel-order", flow_run_name="cancel-{order_id}", persist_result=False)
def cancel_order(order_id: str) -> dict:
    """Cancel one order and compensate whatever it did."""
    run_id = str(flow_run.get_id() or uuid.uuid4())
    outcome = _cancel(order_id, owner=f"cancel:{run_id}")
    publish_artifact(outcome.summary)
    return {"summary": outcome.summary, "changed": outcome.changed, "message": outcome.message}


def cancel(order_id: str) -> Outcome:
    """Run the cancel-order flow in this process. Raises `OrderNotFound` for an unknown id."""
    order_summary(order_id)
    return Outcome(**run_locally(cancel_order, order_id=order_id))


def main(argv: list[str] | None = None) -> int:
    parser = OneLineParser(prog="python -m flows.cancel", description=__doc__)
    parser.add_argument("order_id", type=valid_order_id)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    return run_command(parser, cancel_command, argv)


def cancel_command(args: argparse.Namespace) -> int:
    outcome = cancel(args.order_id)
    if args.json:
        print(
            json.dumps(
                {
                    "message": outcome.message,
                    "changed": outcome.changed,
                    **outcome.summary.model_dump(mode="json"),
                }
            )
        )
    else:
        print(outcome.message)
        print(human_summary(outcome.summary))
    status = outcome.summary.status
    return ExitCode.COMPLETED if status in SETTLED_STATUSES else exit_code(status)


if __name__ == "__main__":
    sys.exit(main())
