"""The order saga as a Prefect flow, and `python -m flows.fulfill`, the one-off run."""

from __future__ import annotations

import argparse
import json
import re
import sys
import uuid
from typing import Any, NoReturn

from prefect import flow
from prefect.runtime import flow_run
from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings
from prefect.states import State

from flows.outcome import exit_code, human_summary, prefect_state, publish_artifact
from flows.saga import drive_order
from storage import saga as log
from storage.db import session_scope
from storage.snapshot import order_summary
from tasks import faults

ORDER_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")


def order_result(order_id: str) -> dict[str, Any]:
    """The order's summary as the CLI and the API report it."""
    with session_scope() as session:
        return order_summary(session, log.get_order(session, order_id=order_id))


def finish_run(order_id: str) -> State:
    """Publish the saga timeline on the current flow run and return its final state."""
    summary = order_result(order_id)
    publish_artifact(summary)
    return prefect_state(summary)


@flow(name="fulfill-order", flow_run_name="{order_id}", persist_result=False)
def fulfill_order(order_id: str) -> State:
    """Drive one recorded order through check → reserve → charge → warehouse, or unwind it."""
    run_id = str(flow_run.get_id() or uuid.uuid4())
    with session_scope() as session:
        log.update_order(session, order_id=order_id, flow_run_id=run_id)
    drive_order(order_id, owner=f"fulfill:{run_id}")
    return finish_run(order_id)


def new_order_id() -> str:
    return f"ord_{uuid.uuid4().hex[:12]}"


def record_order(
    *,
    product_id: str,
    quantity: int,
    customer_id: str,
    payment_method: str,
    order_id: str | None = None,
    workflow_id: str | None = None,
) -> tuple[str, bool]:
    """Record a pending order (before any run is started). Returns (order_id, created)."""
    order_id = order_id or new_order_id()
    with session_scope() as session:
        order, created = log.create_order(
            session,
            order_id=order_id,
            workflow_id=workflow_id or f"order-{order_id}",
            product_id=product_id,
            quantity=quantity,
            customer_id=customer_id,
            payment_method=payment_method,
        )
        return order.order_id, created


def run_order(order_id: str) -> dict[str, Any]:
    """Run the saga of a recorded order in this process unless it is already settled."""
    summary = order_result(order_id)
    if summary["status"] in {"pending", "running", "compensating"}:
        with temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
            fulfill_order(order_id, return_state=True)
        summary = order_result(order_id)
    return summary


class OneLineParser(argparse.ArgumentParser):
    """argparse that reports a usage mistake as one line on stderr and exits 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _text(text: str) -> str:
    if not text.strip():
        raise argparse.ArgumentTypeError("must not be empty")
    return text.strip()


def _order_id(text: str) -> str:
    if not ORDER_ID_PATTERN.match(text):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a valid order id (letters, digits, _ . : -; at most 64)"
        )
    return text


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="python -m flows.fulfill", description=__doc__)
    parser.add_argument("--product", required=True, type=_text, help="product id, e.g. SKU-001")
    parser.add_argument("--quantity", required=True, type=_positive_int, help="units (>= 1)")
    parser.add_argument("--customer", required=True, type=_text, help="customer id")
    parser.add_argument("--payment-method", required=True, type=_text, help="token, e.g. tok_visa")
    parser.add_argument("--order-id", type=_order_id, help="reuse an id: rerunning is safe")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        faults.validate()
    except faults.FaultSpecError as exc:
        parser.error(str(exc))
    order_id, _ = record_order(
        product_id=args.product,
        quantity=args.quantity,
        customer_id=args.customer,
        payment_method=args.payment_method,
        order_id=args.order_id,
    )
    summary = run_order(order_id)
    print(json.dumps(summary) if args.json else human_summary(summary))
    return exit_code(summary["status"])


if __name__ == "__main__":
    sys.exit(main())
