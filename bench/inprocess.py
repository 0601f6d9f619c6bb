"""`python -m bench.inprocess floor|dbos ORDERS_FILE`: modes (d) and (e) of `python -m bench`.
Records and drives the file's orders one after another in this process, on the configured
database, with the floor's plain saga or with DBOS (its system database beside FlowForge's:
`dbos.sqlite3` next to a SQLite file, or database `<name>_dbos` on FlowForge's PostgreSQL).
Prints one JSON object: the loop's wall seconds and this process's CPU seconds over it."""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

from bench import floor
from bench.workload import read_orders, record
from storage.settings import get_settings


def dbos_system_database() -> str:
    """Where DBOS checkpoints: beside FlowForge's database, in the same kind of database."""
    settings = get_settings()
    if settings.database_url.startswith("postgresql"):
        return f"{settings.database_url}_dbos"
    return f"sqlite:///{Path(settings.db_path).absolute().with_name('dbos.sqlite3')}"


def cpu_seconds() -> float:
    """This process's CPU seconds so far (user and system)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.inprocess", description=__doc__)
    parser.add_argument("engine", choices=["floor", "dbos"])
    parser.add_argument("orders", type=Path)
    args = parser.parse_args(argv)
    specs = read_orders(args.orders)
    drive = floor.drive
    if args.engine == "dbos":
        from bench import dbos_peer

        dbos_peer.launch(dbos_system_database())
        drive = dbos_peer.drive
    cpu, started = cpu_seconds(), time.perf_counter()
    for spec in specs:
        record(spec)
        drive(spec.order_id)
    print(json.dumps({"seconds": time.perf_counter() - started, "cpu_s": cpu_seconds() - cpu}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
