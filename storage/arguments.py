"""argparse for every FlowForge command: a usage mistake is one line on stderr, exit 2; ids,
names and numbers checked by the rules the commands share with the HTTP API (storage/limits.py)."""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable
from typing import NoReturn

from storage.limits import IDENTIFIER, PRODUCT_NAME


class OneLineParser(argparse.ArgumentParser):
    """argparse that reports a usage mistake as one line on stderr and exits 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


def number(text: str, parse: Callable[[str], float], kind: str, low: float, high: float) -> float:
    """`text` parsed by `parse`, from `low` to `high`; otherwise an argparse type error."""
    try:
        value = parse(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be {kind}, got {text!r}") from None
    if value != value:  # NaN compares false with everything
        raise argparse.ArgumentTypeError(f"must be {kind} from {low} to {high}, got {text!r}")
    if not low <= value <= high:
        bound = f"at least {low}" if value < low else f"at most {high}"
        raise argparse.ArgumentTypeError(f"must be {bound}, got {value}")
    return value


def whole_number(high: int) -> Callable[[str], int]:
    """An argparse type: a whole number from 1 to `high`."""

    def parse(text: str) -> int:
        return int(number(text, int, "a whole number", 1, high))

    return parse


def identifier(text: str) -> str:
    """An argparse type: an id as the API accepts it in a path."""
    if not re.fullmatch(IDENTIFIER, text):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a valid id (letters, digits, _ . : -; at most 128)"
        )
    return text


def product_name(text: str) -> str:
    """An argparse type: a product name, printable ASCII, 1 to 128 characters once stripped."""
    if not re.fullmatch(PRODUCT_NAME, text.strip()):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a valid name (printable ASCII, 1 to 128 characters)"
        )
    return text.strip()
