"""`python -m storage snapshot|audit|reset` — admin commands on the configured database."""

from __future__ import annotations

import json
import sys

from storage.audit import audit
from storage.cli import OneLineParser
from storage.db import database_url, reset_database, session_scope
from storage.errors import StorageUnavailable
from storage.snapshot import snapshot


def main(argv: list[str] | None = None) -> int:
    parser = OneLineParser(prog="python -m storage", description=__doc__)
    parser.add_argument("command", choices=["snapshot", "audit", "reset"])
    args = parser.parse_args(argv)
    try:
        return run(args.command)
    except StorageUnavailable as exc:
        parser.error(str(exc))


def run(command: str) -> int:
    if command == "reset":
        reset_database()
        print(f"reset {database_url()}: default catalog loaded")
        return 0
    with session_scope(readonly=True) as session:
        if command == "snapshot":
            print(json.dumps(snapshot(session), indent=2))
            return 0
        problems = audit(session)
    for problem in problems:
        print(problem)
    if not problems:
        print("audit clean: every invariant holds")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
