"""Cancellation: an in-flight order stops at its next step boundary and is compensated; a
completed order is compensated in full; both end `cancelled`. `python -m flows.cancel ID`."""

from __future__ import annotations

import json
import sys
import time
import uuid

from prefect import flow
from prefect.runtime import flow_run

from flows.cli import OneLineParser, valid_order_id
from flows.fulfill import order_result
from flows.outcome import Outcome, exit_code, human_summary, publish_artifact, run_locally
from flows.saga import CANCELLED_REASON, drive_order
from storage import saga as log
from storage.db import session_scope
from storage.errors import OrderNotFound
from storage.models import ACTIVE_STATUSES
from storage.settings import get_settings

POLL_SECONDS = 0.25


def request_cancel(order_id: str) -> Outcome:
    """Only flag the order; whoever drives it stops at the next step boundary."""
    with session_scope() as session:
        order = log.get_order(session, order_id=order_id)
        if order.status in {"failed", "cancelled"}:
            flagged = False
        else:
            flagged = log.request_cancel(session, order_id=order_id)
    summary = order_result(order_id)
    if summary["status"] in {"failed", "cancelled"}:
        return Outcome(summary, False, f"order {order_id} is already {summary['status']}")
    message = "cancellation requested" if flagged else "cancellation was already requested"
    return Outcome(summary, flagged, message)


def _wait_until_settled(order_id: str, timeout: float) -> dict:
    deadline = time.monotonic() + timeout
    summary = order_result(order_id)
    while summary["status"] in ACTIVE_STATUSES and time.monotonic() < deadline:
        time.sleep(POLL_SECONDS)
        summary = order_result(order_id)
    return summary


def _cancel(order_id: str, owner: str) -> Outcome:
    requested = request_cancel(order_id)
    status = requested.summary["status"]
    if status in {"failed", "cancelled"}:
        return requested
    if status in ACTIVE_STATUSES:
        drive_order(order_id, owner)
    else:  # completed or needs_attention: unwind what is registered
        undo = {"status": "compensating"}
        if status == "completed":
            undo["failure_reason"] = CANCELLED_REASON
        drive_order(order_id, owner, statuses=frozenset({status}), before=undo)
    summary = _wait_until_settled(order_id, timeout=2 * get_settings().lease_seconds)
    if summary["status"] == "cancelled":
        return Outcome(summary, True, f"order {order_id} cancelled and compensated")
    return Outcome(summary, True, f"order {order_id} is {summary['status']} after cancellation")


@flow(name="cancel-order", flow_run_name="cancel-{order_id}", persist_result=False)
def cancel_order(order_id: str) -> dict:
    """Cancel one order and compensate whatever it did."""
    run_id = str(flow_run.get_id() or uuid.uuid4())
    outcome = _cancel(order_id, owner=f"cancel:{run_id}")
    publish_artifact(outcome.summary)
    return {"summary": outcome.summary, "changed": outcome.changed, "message": outcome.message}


def cancel(order_id: str) -> Outcome:
    """Run the cancel-order flow in this process. Raises `OrderNotFound` for an unknown id."""
    order_result(order_id)
    return Outcome(**run_locally(cancel_order, order_id=order_id))


def main(argv: list[str] | None = None) -> int:
    parser = OneLineParser(prog="python -m flows.cancel", description=__doc__)
    parser.add_argument("order_id", type=valid_order_id)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    try:
        outcome = cancel(args.order_id)
    except OrderNotFound as exc:
        parser.error(str(exc))
    if args.json:
        print(
            json.dumps({"message": outcome.message, "changed": outcome.changed, **outcome.summary})
        )
    else:
        print(outcome.message)
        print(human_summary(outcome.summary))
    status = outcome.summary["status"]
    return 0 if status in {"cancelled", "failed"} else exit_code(status)


if __name__ == "__main__":
    sys.exit(main())
