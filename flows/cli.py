"""Argument types shared by the flows' `__main__` blocks (errors are one line, exit 2)."""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable
from typing import Any

from pydantic import ValidationError

from flows.outcome import ExitCode
from flows.prefect_api import PrefectAuthMissing, PrefectUnavailable, check_access
from storage.arguments import OneLineParser, number, whole_number
from storage.errors import OrderConflict, OrderNotFound, StorageUnavailable
from storage.models import MAX_QUANTITY, ORDER_ID, OrderCreate
from tasks.faults import FaultSpecError, validate

ORDER_ID_PATTERN = re.compile(ORDER_ID)
MAX_SECONDS = 7 * 24 * 3600  # a week: longer is a typo (or inf), not a setting


positive_int = whole_number(MAX_QUANTITY)


def bounded_seconds(low: float, high: float) -> Callable[[str], float]:
    """An argparse type: a finite number of seconds from `low` to `high`."""

    def parse(text: str) -> float:
        return number(text, float, "a number of seconds", low, high)

    return parse


non_negative_seconds = bounded_seconds(0, MAX_SECONDS)


def non_empty(text: str) -> str:
    if not text.strip():
        raise argparse.ArgumentTypeError("must not be empty")
    return text.strip()


def valid_order_id(text: str) -> str:
    if not ORDER_ID_PATTERN.fullmatch(text):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a valid order id (letters, digits, _ . : -; at most 64)"
        )
    return text


def order_line(text: str) -> dict[str, object]:
    """An argparse type: `PRODUCT:UNITS`, one line of a cart."""
    product, colon, units = text.rpartition(":")
    if not colon or not product.strip():
        raise argparse.ArgumentTypeError(f"{text!r} is not PRODUCT:UNITS (e.g. SKU-001:2)")
    return {"product_id": product.strip(), "quantity": positive_int(units)}


class BadOrder(ValueError):
    """Arguments that describe no valid order (one line, exit 2)."""


def valid_order(**fields: Any) -> OrderCreate:
    """The order these fields describe, or `BadOrder` naming each bad field."""
    try:
        return OrderCreate.model_validate(fields)
    except ValidationError as exc:
        problems = (f"{'.'.join(map(str, e['loc'])) or 'order'}: {e['msg']}" for e in exc.errors())
        raise BadOrder("; ".join(problems)) from None


def run_command(
    parser: OneLineParser, command: Callable[[argparse.Namespace], int], argv: list[str] | None
) -> int:
    """Parse `argv`, check the fault variables and that the Prefect server lets us in, run
    `command`; a user mistake (bad argument, bad FAIL_AT/CRASH_AT, unusable database, unknown
    order, no credentials for the Prefect server) is one line and exit 2; no Prefect server is
    one line and exit 4 (what was recorded waits for the intake or the sweep)."""
    args = parser.parse_args(argv)
    try:
        validate()
        check_access()
        return command(args)
    except (
        FaultSpecError,
        BadOrder,
        StorageUnavailable,
        OrderNotFound,
        OrderConflict,
        PrefectAuthMissing,
    ) as exc:
        parser.error(str(exc))
    except PrefectUnavailable as exc:
        print(f"{parser.prog}: {exc}", file=sys.stderr)
        return ExitCode.IN_PROGRESS
