"""`python -m storage snapshot|audit|migrate|reset|receive` — admin commands on the configured
database."""

from __future__ import annotations

import argparse
import json
import sys

from storage.audit import audit
from storage.cli import (
    MAX_RECEIPT,
    MAX_UNIT_PRICE,
    OneLineParser,
    identifier,
    product_name,
    whole_number,
)
from storage.db import database_url, migrate_database, reset_database, session_scope
from storage.errors import ProductMismatch, StorageUnavailable
from storage.migrations import SCHEMA_VERSION
from storage.operations import receive_stock
from storage.snapshot import snapshot


def main(argv: list[str] | None = None) -> int:
    parser = OneLineParser(prog="python -m storage", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands.add_parser("snapshot", help="orders, inventory, payments, warehouse as JSON")
    commands.add_parser("audit", help="every violated invariant; exit 0 when clean")
    commands.add_parser(
        "migrate", help="create the database (default catalog) or bring its schema up to date"
    )
    commands.add_parser("reset", help="empty the database, load the default catalog")
    receive = commands.add_parser(
        "receive",
        help="add received units to a product (created if new)",
        description="Add received units to a product. --name and --unit-price describe a new "
        "product; for an existing one they must match it, or nothing is received (exit 2).",
    )
    receive.add_argument("product_id", metavar="PRODUCT", type=identifier, help="product id")
    receive.add_argument(
        "quantity",
        metavar="QUANTITY",
        type=whole_number(MAX_RECEIPT),
        help=f"units received (1 to {MAX_RECEIPT})",
    )
    receive.add_argument("--name", type=product_name, help="a new product's name (default: id)")
    receive.add_argument(
        "--unit-price",
        metavar="CENTS",
        type=whole_number(MAX_UNIT_PRICE),
        help="a new product's price per unit in cents (default: 1000)",
    )
    args = parser.parse_args(argv)
    try:
        return run(args)
    except (StorageUnavailable, ProductMismatch) as exc:
        parser.error(str(exc))


def run(args: argparse.Namespace) -> int:
    if args.command == "migrate":
        migrate_database()
        print(f"migrated {database_url()}: schema version {SCHEMA_VERSION}")
        return 0
    if args.command == "reset":
        reset_database()
        print(f"reset {database_url()}: default catalog loaded")
        return 0
    if args.command == "receive":
        return receive(args)
    with session_scope(readonly=True) as session:
        if args.command == "snapshot":
            print(json.dumps(snapshot(session), indent=2))
            return 0
        problems = audit(session)
    for problem in problems:
        print(problem)
    if not problems:
        print("audit clean: every invariant holds")
    return 1 if problems else 0


def receive(args: argparse.Namespace) -> int:
    with session_scope() as session:
        product = receive_stock(
            session,
            product_id=args.product_id,
            quantity=args.quantity,
            name=args.name,
            unit_price=args.unit_price,
        )
    print(
        f"received {args.quantity} x {product.product_id}: available {product.available}, "
        f"reserved {product.reserved}, received {product.total_received}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
