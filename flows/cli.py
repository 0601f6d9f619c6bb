"""Argument types shared by the flows' `__main__` blocks (errors are one line, exit 2)."""

from __future__ import annotations

import argparse
import math
import re
from collections.abc import Callable

from storage.cli import OneLineParser
from storage.errors import IdConflict, OrderNotFound, StorageUnavailable
from tasks.faults import FaultSpecError, validate

ORDER_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")
MAX_QUANTITY = 1_000_000


def _number(text: str, parse: Callable[[str], float], kind: str, low: float, high: float) -> float:
    try:
        value = parse(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be {kind}, got {text!r}") from None
    if not low <= value <= high:
        bound = f"at least {low}" if value < low else f"at most {high}"
        raise argparse.ArgumentTypeError(f"must be {bound}, got {value}")
    return value


def positive_int(text: str) -> int:
    return int(_number(text, int, "a whole number", 1, MAX_QUANTITY))


def non_negative_seconds(text: str) -> float:
    return _number(text, float, "a number of seconds", 0, math.inf)


def bounded_seconds(low: float, high: float) -> Callable[[str], float]:
    """An argparse type: a number of seconds from `low` to `high`."""

    def parse(text: str) -> float:
        return _number(text, float, "a number of seconds", low, high)

    return parse


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


def run_command(
    parser: OneLineParser, command: Callable[[argparse.Namespace], int], argv: list[str] | None
) -> int:
    """Parse `argv`, check the fault variables, run `command`; a user mistake (bad argument,
    bad FAIL_AT/CRASH_AT, unusable database, unknown order) is one line and exit 2."""
    args = parser.parse_args(argv)
    try:
        validate()
        return command(args)
    except (FaultSpecError, StorageUnavailable, OrderNotFound, IdConflict) as exc:
        parser.error(str(exc))
