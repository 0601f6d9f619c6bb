"""The order saga as a Prefect flow, and `python -m flows.fulfill`, the one-off run."""

from __future__ import annotations

import argparse
import json
import sys
import uuid

from prefect import flow
from prefect.runtime import flow_run
from prefect.states import State

from flows.cli import (
    BadOrder,
    non_empty,
    order_line,
    positive_int,
    run_command,
    valid_order,
    valid_order_id,
)
from flows.outcome import (
    exit_code,
    handed_over,
    human_summary,
    prefect_state,
    publish_artifact,
    run_locally,
)
from flows.prefect_api import PrefectUnavailable
from flows.saga import drive_order
from storage import saga_log, snapshot
from storage.arguments import OneLineParser
from storage.db import session_scope
from storage.models import ACTIVE_STATUSES, OrderCreate
from storage.settings import get_settings
from storage.views import OrderSummary


def order_summary(order_id: str) -> OrderSummary:
    """The order's summary as the CLI and the API report it."""
    with session_scope() as session:
        return snapshot.order_summary(session, saga_log.get_order(session, order_id=order_id))


@flow(name="fulfill-order", flow_run_name="{order_id}", persist_result=False)
def fulfill_order(order_id: str, lease_owner: str | None = None) -> State:
    """Drive one recorded order through check → reserve → charge → warehouse, or unwind it.
    `lease_owner` is the recorder's lease when it recorded the order to run it itself."""
    run_id = str(flow_run.get_id() or uuid.uuid4())
    owner = lease_owner or f"fulfill:{run_id}"
    if drive_order(order_id, owner=owner, before={"flow_run_id": run_id}) is None:
        return handed_over(order_summary(order_id))
    summary = order_summary(order_id)
    publish_artifact(summary)
    return prefect_state(summary)


def new_order_id() -> str:
    return f"ord_{uuid.uuid4().hex[:12]}"


def record_order(order: OrderCreate, *, lease_owner: str | None = None) -> tuple[str, bool]:
    """Record a pending order (before any run is started; an id is made up when it has
    none), leased to `lease_owner` when it will run it at once. Returns (order_id, created):
    an order recorded before under the same ids with the same details is returned (a safe
    retry); raises `OrderConflict` when either id already names a different order, or the
    order has other details."""
    if order.order_id is None:
        order = order.model_copy(update={"order_id": new_order_id()})
    with session_scope() as session:
        recorded, created = saga_log.create_order(
            session, order, lease_owner=lease_owner, lease_seconds=get_settings().lease_seconds
        )
        return recorded.order_id, created


def run_order(order_id: str, lease_owner: str | None = None) -> OrderSummary:
    """Run the saga of a recorded order in this process unless it is already settled."""
    summary = order_summary(order_id)
    if summary.status in ACTIVE_STATUSES:
        run_locally(fulfill_order, order_id=order_id, lease_owner=lease_owner, return_state=True)
        summary = order_summary(order_id)
    return summary


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="python -m flows.fulfill", description=__doc__)
    parser.add_argument(
        "--line",
        dest="lines",
        action="append",
        type=order_line,
        metavar="PRODUCT:UNITS",
        help="a line of the cart, e.g. SKU-001:2 (repeat it for each product)",
    )
    parser.add_argument("--product", type=non_empty, help="one product id (with --quantity)")
    parser.add_argument("--quantity", type=positive_int, help="its units (>= 1)")
    parser.add_argument("--customer", required=True, type=non_empty, help="customer id")
    parser.add_argument(
        "--payment-method", required=True, type=non_empty, help="token, e.g. tok_visa"
    )
    parser.add_argument("--order-id", type=valid_order_id, help="reuse an id: rerunning is safe")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    return parser


def order_of(args: argparse.Namespace) -> OrderCreate:
    """The order the arguments describe: `--line`s, or `--product` with `--quantity`."""
    single = {"product_id": args.product, "quantity": args.quantity}
    if args.lines and any(single.values()):
        raise BadOrder("give --line, or --product and --quantity, not both")
    if not args.lines and None in single.values():
        raise BadOrder("give --line PRODUCT:UNITS (repeatable), or --product and --quantity")
    return valid_order(
        lines=args.lines or [single],
        customer_id=args.customer,
        payment_method=args.payment_method,
        order_id=args.order_id,
    )


def fulfill(args: argparse.Namespace) -> int:
    owner = f"cli:{uuid.uuid4().hex}"
    order = order_of(args)
    order_id, created = record_order(order, lease_owner=owner)
    try:
        summary = run_order(order_id, lease_owner=owner if created else None)
    except PrefectUnavailable as exc:
        raise PrefectUnavailable(
            f"{exc}; order {order_id} is recorded and waits for an intake or the sweep "
            f"(or run it again with --order-id {order_id})"
        ) from None
    print(json.dumps(summary.model_dump(mode="json")) if args.json else human_summary(summary))
    return exit_code(summary.status)


def main(argv: list[str] | None = None) -> int:
    return run_command(build_parser(), fulfill, argv)


if __name__ == "__main__":
    sys.exit(main())
