"""Latency of one order's saga: in process, and as a whole `python -m flows.fulfill` run.

    prefect server start &                   # any running Prefect server
    export PREFECT_API_URL=http://127.0.0.1:4200/api
    python -m bench.saga_latency [--orders 30] [--cli-runs 5]

Runs on a throwaway SQLite file, created (migrated, the default catalog) here and removed at
the end; the caller's DATABASE_URL, FLOWFORGE_DB_PATH, FAIL_AT and CRASH_AT are ignored.
Prints p50/p95/max of the in-process saga (record + run) and of the CLI's wall time
(interpreter start, imports, saga, exit)."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.submit_latency import summary
from storage.db import migrate_database
from storage.models import OrderCreate
from storage.settings import get_settings

IGNORED = ("DATABASE_URL", "FAIL_AT", "CRASH_AT")  # would point elsewhere or fail orders


def in_process(orders: int) -> list[float]:
    from flows.fulfill import record_order, run_order

    warm_up = OrderCreate(product_id="SKU-003", quantity=1, customer_id="w", payment_method="t")
    run_order(record_order(warm_up)[0])
    timings = []
    for _ in range(orders):
        started = time.perf_counter()
        order_id, _ = record_order(
            OrderCreate(
                product_id="SKU-003", quantity=1, customer_id="bench", payment_method="tok_visa"
            )
        )
        assert run_order(order_id).status == "completed"
        timings.append(time.perf_counter() - started)
    return timings


def cli_runs(runs: int) -> list[float]:
    argv = [
        sys.executable,
        "-m",
        "flows.fulfill",
        "--product",
        "SKU-003",
        "--quantity",
        "1",
        "--customer",
        "bench",
        "--payment-method",
        "tok_visa",
        "--json",
    ]
    timings = []
    for _ in range(runs):
        started = time.perf_counter()
        done = subprocess.run(argv, capture_output=True, text=True, check=True)
        timings.append(time.perf_counter() - started)
        assert json.loads(done.stdout)["status"] == "completed"
    return timings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.saga_latency", description=__doc__)
    parser.add_argument("--orders", type=int, default=30)
    parser.add_argument("--cli-runs", type=int, default=5)
    args = parser.parse_args(argv)
    if not os.environ.get("PREFECT_API_URL"):
        parser.exit(2, "bench.saga_latency: error: set PREFECT_API_URL to a running server\n")
    with tempfile.TemporaryDirectory(prefix="flowforge-saga-latency-") as directory:
        for name in IGNORED:
            os.environ.pop(name, None)
        os.environ["FLOWFORGE_DB_PATH"] = str(Path(directory) / "bench.sqlite3")
        get_settings.cache_clear()
        migrate_database()  # this process and the CLI runs (they inherit the environment)
        report = {
            "in_process_seconds": summary(in_process(args.orders)),
            "cli_wall_seconds": summary(cli_runs(args.cli_runs)),
        }
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
