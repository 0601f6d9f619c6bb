"""Argument types shared by the flows' `__main__` blocks (errors are one line, exit 2)."""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable

from storage.cli import OneLineParser
from storage.errors import OrderNotFound, StorageUnavailable
from tasks.faults import FaultSpecError, validate

ORDER_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")
MAX_QUANTITY = 1_000_000


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    if value > MAX_QUANTITY:
        raise argparse.ArgumentTypeError(f"must be at most {MAX_QUANTITY}, got {value}")
    return value


def non_empty(text: str) -> str:
    if not text.strip():
        raise argparse.ArgumentTypeError("must not be empty")
    return text.strip()


def valid_order_id(text: str) -> str:
    if not ORDER_ID_PATTERN.match(text):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a valid order id (letters, digits, _ . : -; at most 64)"
        )
    return text


def non_negative_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number of seconds, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must not be negative, got {value}")
    return value


def run_command(
    parser: OneLineParser, command: Callable[[argparse.Namespace], int], argv: list[str] | None
) -> int:
    """Parse `argv`, check the fault variables, run `command`; a user mistake (bad argument,
    bad FAIL_AT/CRASH_AT, unusable database, unknown order) is one line and exit 2."""
    args = parser.parse_args(argv)
    try:
        validate()
        return command(args)
    except (FaultSpecError, StorageUnavailable, OrderNotFound) as exc:
        parser.error(str(exc))
