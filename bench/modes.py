"""The ways of running the workload, each measured the same way (see docs/benchmarks.md).
A mode gets its own directory, database and orders file, and returns what it measured; the
books are checked afterwards by `bench.workload.check`."""

from __future__ import annotations

import importlib.util
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import reduce
from pathlib import Path
from typing import Any

from bench.meter import Finished, TreeMeter, Usage, run_measured
from bench.services import stack
from bench.workload import OrderSpec

PYTHON = sys.executable
HTTP_CLIENTS = 20
OPEN_LOOP_RATE = 10.0  # orders/s: mode (g)'s offered rate unless `--rates` says otherwise
BATCH_CONCURRENCY = 8  # the intake's default (FLOWFORGE_INTAKE_CONCURRENCY)
CLI_ORDERS = 5


class Unavailable(Exception):
    """The mode cannot run here (something it needs is missing): reported, never hidden."""


class ModeError(Exception):
    """The mode did not run to its end."""


@dataclass
class Context:
    """What a mode runs with: its directory (database, orders file, logs), its orders, the
    environment of every process it starts, and the shared Prefect server (started on first
    use; yields its API URL and pid)."""

    directory: Path
    orders: list[OrderSpec]
    env: dict[str, str]
    prefect: Callable[[], tuple[str, int]]
    timeout: float

    @property
    def orders_file(self) -> Path:
        return self.directory / "orders.jsonl"

    def log(self, name: str) -> Path:
        return self.directory / f"{name}.log"


@dataclass
class Measured:
    """The workload's wall time and cost; `latencies` when the mode's latency is not the
    database's created_at → finished_at; `other_latencies` and `tallies` (counts such as the
    clients' retries) go to the JSON under their name; `counts` the orders by final state as a
    mode that writes no books (f) saw them."""

    seconds: float
    usage: Usage
    latencies: list[float] | None = None
    other_latencies: dict[str, list[float]] = field(default_factory=dict)
    tallies: dict[str, int] = field(default_factory=dict)
    counts: dict[str, int] | None = None  # orders by final state, from a mode without books


def _require(module: str, why: str) -> None:
    if importlib.util.find_spec(module) is None:
        raise Unavailable(why)


def _succeeded(done: Finished, log: Path, codes: tuple[int, ...] = (0,)) -> Finished:
    """`done`, unless it exited with a code not in `codes` (then its log's last line says why)."""
    if done.returncode not in codes:
        lines = [line for line in log.read_text(errors="replace").splitlines() if line.strip()]
        raise ModeError(f"exit code {done.returncode}: {lines[-1] if lines else 'no output'}")
    return done


def _clients_on_stack(ctx: Context, clients: list[str]) -> tuple[dict[str, Any], Usage]:
    """Start the stack and run the client command `clients` (given the API's URL and the
    orders file) against it; the clients' JSON report, and the usage of everything."""
    with stack(ctx.env, ctx.log("stack")) as (api, pid), TreeMeter([pid]) as meter:
        done = run_measured(
            [*clients, api, str(ctx.orders_file)], ctx.env, ctx.log("clients"), ctx.timeout
        )
        usage = meter.finish()
    return json.loads(_succeeded(done, ctx.log("clients")).stdout), usage.add(done.usage)


def service(ctx: Context) -> Measured:
    """(a) The stack (API, intake, Prefect server) and HTTP clients posting (retrying on a
    connection error or a 503) and long-polling, each taking the next order once one ends."""
    clients = [PYTHON, "-m", "bench.http_load", "--clients", str(HTTP_CLIENTS)]
    report, usage = _clients_on_stack(ctx, clients)
    client_seen = [order["latency_s"] for order in report["orders"].values()]
    return Measured(
        report["seconds"],
        usage,
        other_latencies={"client_latency_s": client_seen},
        tallies={"post_retries": report["post_retries"]},
    )


def service_open(rate: float) -> Callable[[Context], Measured]:
    """(g) The stack as in (a), and one client posting `rate` orders a second whatever the
    answers (an open loop: `bench.open_load`); latency from the database's timestamps."""

    def run(ctx: Context) -> Measured:
        clients = [PYTHON, "-m", "bench.open_load", "--rate", str(rate)]
        report, usage = _clients_on_stack(ctx, clients)
        return Measured(
            report["seconds"],
            usage,
            other_latencies={"post_lag_s": report["post_lag_s"]},
            tallies={"post_retries": report["post_retries"]},
        )

    return run


def batch(ctx: Context) -> Measured:
    """(b) `python -m flows.batch` on the orders file, against the shared Prefect server."""
    _require("flows.batch", "flows.batch does not exist yet")
    api, pid = ctx.prefect()
    argv = [PYTHON, "-m", "flows.batch", str(ctx.orders_file)]
    argv += ["--concurrency", str(BATCH_CONCURRENCY), "--json"]
    with TreeMeter([pid]) as meter:
        done = run_measured(argv, ctx.env | {"PREFECT_API_URL": api}, ctx.log("batch"), ctx.timeout)
        usage = meter.finish()
    _succeeded(done, ctx.log("batch"), codes=(0, 1))  # 1: some orders failed, as planned
    return Measured(done.seconds, usage.add(done.usage))


def cli(ctx: Context) -> Measured:
    """(c) One `python -m flows.fulfill` process per order, one after another."""
    api, pid = ctx.prefect()
    runs = []
    with TreeMeter([pid]) as meter:
        for spec in ctx.orders:
            argv = [PYTHON, "-m", "flows.fulfill", "--product", spec.product_id]
            argv += ["--quantity", str(spec.quantity), "--customer", spec.customer_id]
            argv += ["--payment-method", spec.payment_method, "--order-id", spec.order_id, "--json"]
            env = ctx.env | {"PREFECT_API_URL": api}
            done = run_measured(argv, env, ctx.log("cli"), ctx.timeout)
            runs.append(_succeeded(done, ctx.log("cli"), codes=(0, 1)))
        usage = meter.finish()
    total = reduce(Usage.add, (run.usage for run in runs), usage)
    return Measured(sum(run.seconds for run in runs), total, [run.seconds for run in runs])


def prefect_floor(ctx: Context) -> Measured:
    """(f) Prefect's floor: `python -m bench.prefect_floor`, the engine's shape with no-op task
    bodies, against the shared Prefect server; measured as (b)."""
    api, pid = ctx.prefect()
    argv = [PYTHON, "-m", "bench.prefect_floor", str(ctx.orders_file)]
    argv += ["--concurrency", str(BATCH_CONCURRENCY)]
    env = ctx.env | {"PREFECT_API_URL": api}
    with TreeMeter([pid]) as meter:
        done = run_measured(argv, env, ctx.log("prefect-floor"), ctx.timeout)
        usage = meter.finish()
    report = json.loads(_succeeded(done, ctx.log("prefect-floor"), codes=(0, 1)).stdout)
    usage = usage.add(done.usage)
    return Measured(done.seconds, usage, report["latencies"], counts=report["counts"])


def in_process(engine: str) -> Callable[[Context], Measured]:
    """(d) and (e): `python -m bench.inprocess ENGINE`, which reports its own loop's time and
    CPU (its interpreter start and imports are not the engine's cost per order)."""

    def run(ctx: Context) -> Measured:
        if engine == "dbos":
            _require("dbos", "dbos is not installed: pip install -e '.[bench]'")
        argv = [PYTHON, "-m", "bench.inprocess", engine, str(ctx.orders_file)]
        done = _succeeded(
            run_measured(argv, ctx.env, ctx.log(engine), ctx.timeout), ctx.log(engine)
        )
        report = json.loads(done.stdout)
        usage = Usage({f"bench.inprocess {engine}": report["cpu_s"]}, done.usage.peak_rss_mb)
        return Measured(report["seconds"], usage)

    return run


@dataclass(frozen=True)
class Mode:
    letter: str
    name: str
    title: str
    run: Callable[[Context], Measured]
    latency: str  # what the latency column measures in this mode
    max_orders: int | None = None
    postgres: bool = False  # runs on PostgreSQL too (`--database postgres`)
    books: bool = True  # writes FlowForge's database: its audit and outcomes are checked
    rate: float | None = None  # the orders/s an open-loop mode (g) offers


def open_loop(rate: float, name: str = "service-open") -> Mode:
    """Mode (g) offering `rate` orders a second."""
    title = f"HTTP open loop {rate:g}/s"
    return Mode("g", name, title, service_open(rate), "created → finished", rate=rate)


MODES = (
    Mode("a", "service", "HTTP service (stack)", service, "created → finished"),
    Mode("b", "batch", "batch (flows.batch)", batch, "created → finished", postgres=True),
    Mode("c", "cli", "one-off CLI runs", cli, "command wall time", CLI_ORDERS),
    Mode(
        "d", "floor", "floor: plain saga", in_process("floor"), "created → finished", postgres=True
    ),
    Mode("e", "dbos", "peer: DBOS", in_process("dbos"), "created → finished", postgres=True),
    Mode(
        "f",
        "prefect-floor",
        "Prefect floor: no-op",
        prefect_floor,
        "submitted → task body ended",
        postgres=True,
        books=False,
    ),
    open_loop(OPEN_LOOP_RATE),
)
