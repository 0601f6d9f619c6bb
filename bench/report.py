"""A mode's result and how it is shown: the table (and, when Prefect's floor (f) ran, what each
mode on Prefect costs over it), the JSON, the chart."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.meter import Usage
from bench.modes import Measured, Mode
from bench.submit_latency import percentile
from bench.workload import Books

PERCENTILES = {"p50": 0.50, "p95": 0.95, "p99": 0.99}
GROUPS = ("client", "prefect_server", "api")


def latency_summary(values: list[float]) -> dict[str, float] | None:
    """p50/p95/p99 (nearest rank) in seconds; None without values."""
    if not values:
        return None
    return {name: round(percentile(values, q), 4) for name, q in PERCENTILES.items()}


@dataclass
class Result:
    """One mode's outcome: `status` is ok, FAILED (it broke or its books do not balance) or
    unavailable (it could not run here, and `reason` says why)."""

    mode: Mode
    orders: int
    expected: dict[str, int]
    status: str = "ok"
    reason: str = ""
    books: Books = field(default_factory=Books)
    measured: Measured | None = None

    @property
    def usage(self) -> Usage | None:
        return self.measured.usage if self.measured else None

    @property
    def latencies(self) -> list[float]:
        """The mode's own latency when it has one (see `Mode.latency`), else the database's."""
        if self.measured is None:
            return []
        return self.books.latencies if self.measured.latencies is None else self.measured.latencies

    @property
    def audit(self) -> str | None:
        """`clean` (audit clean, every order as planned), `bad`, `n/a` (the mode writes no
        books), or None when the mode could not run."""
        if self.status == "unavailable":
            return None
        if not self.mode.books:
            return "n/a"
        return "clean" if self.books.balanced else "bad"

    @property
    def orders_per_s(self) -> float | None:
        return self.orders / self.measured.seconds if self.measured else None

    @property
    def cpu_ms_per_order(self) -> float | None:
        return 1000 * self.usage.total_cpu_s / self.orders if self.usage and self.orders else None

    def to_json(self, baselines: dict[str, Result]) -> dict[str, Any]:
        usage = self.usage or Usage()
        return {
            "mode": self.mode.letter,
            "name": self.mode.name,
            "title": self.mode.title,
            "status": self.status,
            "reason": self.reason,
            "orders": self.orders,
            "expected": self.expected,
            "counts": self.books.counts,
            "problems": self.books.problems,
            "seconds": _round(self.measured.seconds) if self.measured else None,
            "orders_per_s": _round(self.orders_per_s),
            "latency_measures": self.mode.latency,
            "latency_s": latency_summary(self.latencies),
            "db_latency_s": latency_summary(self.books.latencies),
            "cpu_ms_per_order": _round(self.cpu_ms_per_order),
            "cpu_s_by_process": {name: round(cpu, 3) for name, cpu in usage.cpu_s.items()},
            "peak_rss_mb": _round(usage.peak_rss_mb) if self.usage else None,
            "audit": self.audit,
            "cpu_ms_per_order_by_group": {
                group: round(ms, 2) for group, ms in cpu_ms_by_group(self).items()
            },
            "ratios": ratios(self, baselines),
            "over_prefect_floor": over_prefect_floor(self, baselines),
            **{
                key: latency_summary(values)
                for key, values in (self.measured.other_latencies if self.measured else {}).items()
            },
            **(self.measured.tallies if self.measured else {}),
        }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def _ratio(value: float | None, base: float | None) -> float | None:
    return round(value / base, 2) if value and base else None


def ratios(result: Result, baselines: dict[str, Result]) -> dict[str, float | None]:
    """CPU per order and orders/s as multiples of the floor's (d) and DBOS's (e)."""
    found = {}
    for letter, base in baselines.items():
        found[f"cpu_vs_{letter}"] = _ratio(result.cpu_ms_per_order, base.cpu_ms_per_order)
        found[f"rate_vs_{letter}"] = _ratio(result.orders_per_s, base.orders_per_s)
    return found


def group_of(label: str) -> str:
    """The process group of a process label: `prefect_server`; `api` (FlowForge's HTTP API and
    the bench's HTTP clients loading it); else `client`, what runs the orders (the batch, the
    intake and the runner, the stack's supervisor, a CLI run, a floor)."""
    if label.startswith("prefect server"):
        return "prefect_server"
    return "api" if label in ("api", "bench.http_load", "bench.open_load") else "client"


def cpu_ms_by_group(result: Result) -> dict[str, float]:
    """CPU ms per order of each process group the mode used."""
    if result.usage is None or not result.orders:
        return {}
    found = dict.fromkeys(GROUPS, 0.0)
    for name, seconds in result.usage.cpu_s.items():
        found[group_of(name)] += 1000 * seconds / result.orders
    return {group: ms for group, ms in found.items() if ms or group == "client"}


def over_prefect_floor(result: Result, baselines: dict[str, Result]) -> dict[str, Any] | None:
    """A mode on Prefect (it used a Prefect server) over Prefect's floor (f), when (f) ran and
    balanced: its orders/s, CPU per order and the client's and the Prefect server's CPU per
    order as multiples of (f)'s. (f) has no API: the API's ms per order is in
    `cpu_ms_per_order_by_group`. None for any other mode."""
    base = baselines.get("f")
    mine = cpu_ms_by_group(result)
    if base is None or result.mode.letter == "f" or "prefect_server" not in mine:
        return None
    floor = cpu_ms_by_group(base)
    return {
        "orders_per_s": _ratio(result.orders_per_s, base.orders_per_s),
        "cpu_ms_per_order": _ratio(result.cpu_ms_per_order, base.cpu_ms_per_order),
        "client_cpu": _ratio(mine.get("client"), floor.get("client")),
        "prefect_server_cpu": _ratio(mine.get("prefect_server"), floor.get("prefect_server")),
    }


COLUMNS = (
    ("mode", 22),
    ("status", 11),
    ("audit", 5),
    ("orders", 6),
    ("orders/s", 8),
    ("p50 s", 7),
    ("p95 s", 7),
    ("p99 s", 7),
    ("CPU ms/ord", 10),
    ("RSS MB", 7),
    ("CPU ×d", 7),
    ("CPU ×e", 7),
    ("rate ×d", 7),
    ("rate ×e", 7),
)


def _cell(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.3g}" if value < 10 else f"{value:.0f}"
    return str(value)


OVERHEAD_RATIOS = ("orders_per_s", "cpu_ms_per_order", "client_cpu", "prefect_server_cpu")
OVERHEAD_COLUMNS = (
    ("over Prefect floor (f)", 22),
    ("rate ×f", 7),
    ("CPU ×f", 7),
    ("client ms/ord", 13),
    ("×f", 5),
    ("server ms/ord", 13),
    ("×f", 5),
    ("API ms/ord", 10),
)


def _row(cells: list[str], columns: tuple[tuple[str, int], ...] = COLUMNS) -> str:
    return "  ".join(
        f"{cell:>{width}}" if i else f"{cell:<{width}}"
        for i, (cell, (_, width)) in enumerate(zip(cells, columns, strict=True))
    )


def overhead_table(results: list[Result], baselines: dict[str, Result]) -> list[str]:
    """What each mode on Prefect costs over Prefect's floor (f), per process group: (f)'s row,
    then one per such mode; nothing when (f) did not run and balance."""
    base = baselines.get("f")
    if base is None:
        return []
    lines = ["", _row([name for name, _ in OVERHEAD_COLUMNS], OVERHEAD_COLUMNS)]
    for result in [base, *(result for result in results if result is not base)]:
        over = over_prefect_floor(result, baselines)
        if result is base:
            over = dict.fromkeys(OVERHEAD_RATIOS, 1.0)
        elif over is None:
            continue
        ms = cpu_ms_by_group(result)
        cells = [
            f"{result.mode.letter} {result.mode.title}",
            over["orders_per_s"],
            over["cpu_ms_per_order"],
            ms.get("client"),
            over["client_cpu"],
            ms.get("prefect_server"),
            over["prefect_server_cpu"],
            ms.get("api"),
        ]
        lines.append(_row([_cell(cell) for cell in cells], OVERHEAD_COLUMNS))
    return lines


def table(results: list[Result], baselines: dict[str, Result]) -> str:
    """The results as a text table, then what each FAILED or unavailable mode said."""
    lines = [_row([name for name, _ in COLUMNS])]
    for result in results:
        latency = latency_summary(result.latencies) or {}
        ratio = ratios(result, baselines)
        cells = [
            f"{result.mode.letter} {result.mode.title}",
            result.status,
            result.audit,
            result.orders,
            result.orders_per_s,
            latency.get("p50"),
            latency.get("p95"),
            latency.get("p99"),
            result.cpu_ms_per_order,
            result.usage.peak_rss_mb if result.usage else None,
            ratio.get("cpu_vs_d"),
            ratio.get("cpu_vs_e"),
            ratio.get("rate_vs_d"),
            ratio.get("rate_vs_e"),
        ]
        lines.append(_row([_cell(cell) for cell in cells]))
    lines += overhead_table(results, baselines)
    lines += [
        f"{result.mode.letter}: {result.status}: {result.reason}"
        for result in results
        if result.reason
    ]
    return "\n".join(lines)


def chart(results: list[Result], path: Path) -> str:
    """Draw orders/s, CPU per order and latency per mode to `path`; says what it did."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return (
            f"no chart: matplotlib is not installed (pip install -e '.[bench]'); {path} unchanged"
        )
    shown = [result for result in results if result.status == "ok"]
    if not shown:
        return f"no chart: no mode succeeded; {path} unchanged"
    names = [f"{r.mode.letter} {r.mode.name}" for r in shown]
    figure, (rate, cpu, latency) = plt.subplots(1, 3, figsize=(14, 0.7 * len(shown) + 1.8))
    bars = rate.barh(names, [r.orders_per_s or 0 for r in shown], color="#4c72b0")
    rate.bar_label(bars, fmt="%.3g", padding=2)
    rate.set_title("orders / s")
    bars = cpu.barh(names, [r.cpu_ms_per_order or 0 for r in shown], color="#dd8452")
    cpu.bar_label(bars, fmt="%.0f", padding=2)
    cpu.set_title("CPU ms per order, every process")
    summaries = [latency_summary(r.latencies) or {} for r in shown]
    for offset, name in ((-0.2, "p50"), (0.2, "p95")):
        bars = latency.barh(
            [p + offset for p in range(len(shown))],
            [s.get(name, 0) for s in summaries],
            0.4,
            label=name,
        )
        latency.bar_label(bars, fmt="%.2g", padding=2, fontsize=8)
    latency.set_yticks(range(len(shown)), names)
    latency.set_title("latency, seconds")
    latency.legend(loc="lower right")
    for axis in (rate, cpu, latency):
        axis.set_xscale("log")
        axis.margins(x=0.25)
        axis.invert_yaxis()
    orders = max(r.orders for r in shown)
    figure.suptitle(
        f"FlowForge: the same workload ({orders} orders, 10% compensated) every way (log scales)"
    )
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return f"chart written to {path}"
