"""Soak worker: `python -m tests.flows.soak_worker PLAN.json` runs recorded orders one after
another in this process, each with its own FAIL_AT / CRASH_AT (a crash ends the worker)."""

from __future__ import annotations

import json
import os
import sys

from flows.fulfill import run_order


def main(plan_path: str) -> None:
    with open(plan_path) as plan:
        for item in json.load(plan):
            for variable in ("FAIL_AT", "CRASH_AT"):
                os.environ.pop(variable, None)
                if item.get(variable):
                    os.environ[variable] = item[variable]
            run_order(item["order_id"])


if __name__ == "__main__":
    main(sys.argv[1])
