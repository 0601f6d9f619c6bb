"""Mode (g), the open loop, at several offered rates: `python -m bench --modes g --rates 6,9,12`.
Each rate is a run of its own (a fresh stack and database, a row of the table). A rate is
sustained when its books balance, the p95 of created → finished is under P95_TARGET_S, and the
client kept its schedule (p95 post lag under the same bound); the highest one is reported."""

from __future__ import annotations

import argparse
from typing import Any

from bench.modes import Mode, open_loop
from bench.open_load import rate
from bench.report import Result, latency_summary

P95_TARGET_S = 0.5


def rates(text: str) -> list[float]:
    """An argparse type: comma-separated offered rates in orders per second."""
    picked = {rate(part.strip()) for part in text.split(",") if part.strip()}
    if not picked:
        raise argparse.ArgumentTypeError("name at least one rate, e.g. 6,9,12")
    return sorted(picked)


def at_rates(modes: list[Mode], offered: list[float]) -> list[Mode]:
    """`modes` with the open loop run once per offered rate."""
    expanded = []
    for mode in modes:
        if mode.rate is None:
            expanded.append(mode)
        else:
            expanded += [open_loop(each, f"service-open-{each:g}") for each in offered]
    return expanded


def _p95(values: list[float]) -> float | None:
    return (latency_summary(values) or {}).get("p95")


def sustained(results: list[Result]) -> dict[str, Any] | None:
    """Per offered rate: its p95 latency and post lag, and whether it was sustained; the
    highest rate sustained. None when the open loop did not run."""
    runs = [result for result in results if result.mode.rate is not None]
    if not runs:
        return None
    by_rate: dict[str, dict[str, Any]] = {}
    best = None
    for result in sorted(runs, key=lambda run: run.mode.rate or 0):
        p95 = _p95(result.latencies)
        lag = _p95(result.measured.other_latencies["post_lag_s"]) if result.measured else None
        on_time = lag is None or lag < P95_TARGET_S
        held = result.status == "ok" and p95 is not None and p95 < P95_TARGET_S and on_time
        by_rate[f"{result.mode.rate:g}"] = {"p95_s": p95, "post_lag_p95_s": lag, "sustained": held}
        best = result.mode.rate if held else best
    return {"p95_target_s": P95_TARGET_S, "rates": by_rate, "highest_sustained_rate": best}


def summary(found: dict[str, Any]) -> str:
    """One line: the highest offered rate sustained, of those tried."""
    best = found["highest_sustained_rate"]
    return (
        f"g open loop: highest offered rate sustained (p95 < {P95_TARGET_S} s): "
        f"{'none' if best is None else f'{best:g}/s'} of {', '.join(found['rates'])} orders/s"
    )
