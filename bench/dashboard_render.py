"""How long the dashboard takes to render on many orders (default 10,000), inserted directly
through storage into a throw-away SQLite file. Reported, not asserted.

    .venv/bin/python bench/dashboard_render.py [--orders 10000] [--runs 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def measure(orders: int, runs: int) -> dict[str, float]:
    """Fill a fresh database and time one cold render, then `runs` warm ones (seconds)."""
    # imported here: FLOWFORGE_DB_PATH must be set before storage reads its settings
    from streamlit.testing.v1 import AppTest

    from bench.factory import fill_orders

    started = time.perf_counter()
    fill_orders(orders)
    insert = time.perf_counter() - started
    page = AppTest.from_file(str(ROOT / "dashboard" / "app.py"), default_timeout=300)
    timings = []
    for _ in range(runs + 1):
        started = time.perf_counter()
        page.run()
        timings.append(time.perf_counter() - started)
        if page.exception:
            raise SystemExit(f"the page failed: {page.exception[0].value}")
    warm = timings[1:]
    return {
        "insert": insert,
        "cold": timings[0],
        "median": statistics.median(warm),
        "min": min(warm),
        "max": max(warm),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=5, help="warm renders after the cold one")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    os.environ.pop("DATABASE_URL", None)
    with tempfile.TemporaryDirectory(prefix="flowforge-bench-") as directory:
        os.environ["FLOWFORGE_DB_PATH"] = str(Path(directory) / "bench.sqlite3")
        result = measure(args.orders, args.runs)
    print(f"dashboard render on {args.orders} orders ({args.runs} warm runs):")
    print(f"  bulk insert      {result['insert']:.2f} s")
    print(f"  first render     {result['cold']:.2f} s (includes importing Prefect and the page)")
    print(
        f"  warm render      median {result['median']:.2f} s"
        f" (min {result['min']:.2f}, max {result['max']:.2f})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
