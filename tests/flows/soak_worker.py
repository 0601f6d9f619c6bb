"""Soak worker: `python -m tests.flows.soak_worker PLAN.json` runs recorded orders one after
another in this process, each with its own FAIL_AT / CRASH_AT (a crash ends the worker). An
order whose run the Prefect server cannot take (a busy server answering 503 past the
client's retries) is left recorded for the sweep, as it would be in production."""

from __future__ import annotations

import json
import os
import sys

from flows.fulfill import run_order
from flows.outcome import PREFECT_ERRORS


def main(plan_path: str) -> None:
    with open(plan_path) as plan:
        for item in json.load(plan):
            for variable in ("FAIL_AT", "CRASH_AT"):
                os.environ.pop(variable, None)
                if item.get(variable):
                    os.environ[variable] = item[variable]
            try:
                run_order(item["order_id"])
            except PREFECT_ERRORS as exc:
                print(f"{item['order_id']} left to the sweep: {exc}", file=sys.stderr)


if __name__ == "__main__":
    main(sys.argv[1])
