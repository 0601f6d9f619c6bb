"""Command-line helpers shared by the flows' `__main__` blocks: one-line errors, exit 2."""

from __future__ import annotations

import argparse
import re
from typing import NoReturn

ORDER_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")
MAX_QUANTITY = 1_000_000


class OneLineParser(argparse.ArgumentParser):
    """argparse that reports a usage mistake as one line on stderr and exits 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


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
