"""The five ways of running the workload, each measured the same way (see docs/benchmarks.md).
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

from bench.meter import Finished, TreeMeter, Usage, run_measured
from bench.services import stack
from bench.workload import OrderSpec

PYTHON = sys.executable
HTTP_CLIENTS = 20
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
    clients' retries) go to the JSON under their name."""

    seconds: float
    usage: Usage
    latencies: list[float] | None = None
    other_latencies: dict[str, list[float]] = field(default_factory=dict)
    tallies: dict[str, int] = field(default_factory=dict)


def _require(module: str, why: str) -> None:
    if importlib.util.find_spec(module) is None:
        raise Unavailable(why)


def _succeeded(done: Finished, log: Path, codes: tuple[int, ...] = (0,)) -> Finished:
    """`done`, unless it exited with a code not in `codes` (then its log's last line says why)."""
    if done.returncode not in codes:
        lines = [line for line in log.read_text(errors="replace").splitlines() if line.strip()]
        raise ModeError(f"exit code {done.returncode}: {lines[-1] if lines else 'no output'}")
    return done


def service(ctx: Context) -> Measured:
    """(a) The stack (API, intake, Prefect server) and HTTP clients posting (retrying on a
    connection error or a 503) and polling."""
    clients = [PYTHON, "-m", "bench.http_load", "--clients", str(HTTP_CLIENTS)]
    with stack(ctx.env, ctx.log("stack")) as (api, pid), TreeMeter([pid]) as meter:
        done = run_measured(
            [*clients, api, str(ctx.orders_file)], ctx.env, ctx.log("clients"), ctx.timeout
        )
        usage = meter.finish()
    report = json.loads(_succeeded(done, ctx.log("clients")).stdout)
    client_seen = [order["latency_s"] for order in report["orders"].values()]
    return Measured(
        report["seconds"],
        usage.add(done.usage),
        other_latencies={"client_latency_s": client_seen},
        tallies={"post_retries": report["post_retries"]},
    )


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


MODES = (
    Mode("a", "service", "HTTP service (stack)", service, "created → finished"),
    Mode("b", "batch", "batch (flows.batch)", batch, "created → finished"),
    Mode("c", "cli", "one-off CLI runs", cli, "command wall time", CLI_ORDERS),
    Mode("d", "floor", "floor: plain saga", in_process("floor"), "created → finished"),
    Mode("e", "dbos", "peer: DBOS", in_process("dbos"), "created → finished"),
)
