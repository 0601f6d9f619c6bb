"""`python -m provider`: serve the local double of Stripe's API with uvicorn until SIGTERM or
Ctrl-C."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import NoReturn

import uvicorn
from pydantic import ValidationError

from provider.app import create_app
from provider.errors import describe_validation
from provider.faults import FaultConfig
from provider.store import DatabaseUnavailable

DEFAULT_API_KEY = "sk_test_flowforge"


class Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line on stderr (exit 2)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


def port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid port {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"port {value} is out of range 0..65535")
    return value


def main(argv: list[str] | None = None) -> int:
    parser = Parser(prog="python -m provider", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=port, default=4300)
    parser.add_argument("--db", type=Path, default=Path(".flowforge/provider.sqlite3"))
    parser.add_argument(
        "--create", action="store_true", help="create the database file if it does not exist"
    )
    parser.add_argument(
        "--api-key",
        help=f"default: $PROVIDER_API_KEY, else {DEFAULT_API_KEY}; prefer the variable, since"
        " every local user can read a command line",
    )
    parser.add_argument("--faults", help="fault configuration JSON (default: $PROVIDER_FAULTS)")
    args = parser.parse_args(argv)
    if args.api_key is not None:
        source, api_key = "--api-key", args.api_key
    else:
        source, api_key = "PROVIDER_API_KEY", os.environ.get("PROVIDER_API_KEY", DEFAULT_API_KEY)
    if not api_key:
        parser.error(f"{source} must not be empty")
    source = "--faults" if args.faults is not None else "PROVIDER_FAULTS"
    raw = args.faults if args.faults is not None else os.environ.get("PROVIDER_FAULTS")
    try:
        faults = FaultConfig.model_validate_json(raw) if raw else None
    except ValidationError as exc:
        parser.error(f"invalid {source}: {describe_validation(exc)}")
    try:
        app = create_app(args.db, api_key, faults, create=args.create)
    except DatabaseUnavailable as exc:
        parser.error(str(exc))
    # h11 pinned: the `drop` fault's connection abort is verified against it.
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        http="h11",
        access_log=False,
        timeout_graceful_shutdown=3,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
