"""`python -m bench`: the same workload through every way of running FlowForge, side by side.

    python -m bench [--orders N] [--quick] [--modes a,b,c,d,e,f,g] [--database sqlite|postgres]
                    [--rates 6,9,12] [--json FILE] [--chart FILE]

Modes: (a) the HTTP service, (b) the batch command, (c) one-off CLI runs, (d) the floor — a
plain Python saga on FlowForge's storage, no orchestrator — (e) the same saga on DBOS, and
(f) Prefect's floor — the engine's flow and task runs with no-op bodies, no FlowForge at all —
and (g) the HTTP service again, under an open loop: one client posting at a fixed rate
(`--rates`: one run per rate, and the highest one sustained with p95 under 0.5 s).
Each runs N orders (10% failing at the warehouse and compensated) on a fresh SQLite database,
or with `--database postgres` a fresh database on a throwaway PostgreSQL cluster (modes b, d,
e, f only); afterwards the audit must be clean and every order must have ended as expected
((f) writes no books: it must report every order completed), or the mode is FAILED and the
exit code is 1. Details: docs/benchmarks.md."""

from __future__ import annotations

import argparse
import functools
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path

from bench import postgres, workload
from bench.modes import MODES, Context, Mode, ModeError, Unavailable
from bench.report import Result, chart, table
from bench.services import prefect_server
from bench.sweep import at_rates, rates, summary, sustained
from flows.prefect_api import NO_TELEMETRY
from storage.arguments import OneLineParser, whole_number

ROOT = Path(__file__).resolve().parent.parent
QUICK_ORDERS = 10
QUICK_CLI_ORDERS = 2
DEFAULT_ORDERS = 500
RETRY_DELAYS = "0"  # retries happen, back-off sleeps do not: the bench measures work
DATABASES = {
    "sqlite": "SQLite, a file per mode",
    "postgres": "PostgreSQL, a database per mode on a throwaway cluster (fsync on); "
    "the Prefect server on its own SQLite",
}
DROPPED = ("DATABASE_URL", "PREFECT_API_URL", "FLOWFORGE_API_TOKEN", "FAIL_AT", "CRASH_AT")


def modes(text: str) -> list[Mode]:
    """An argparse type: comma-separated mode letters or names."""
    by_key = {key: mode for mode in MODES for key in (mode.letter, mode.name)}
    picked = [part.strip() for part in text.split(",") if part.strip()]
    unknown = [part for part in picked if part not in by_key]
    if unknown or not picked:
        choices = ", ".join(f"{m.letter} ({m.name})" for m in MODES)
        raise argparse.ArgumentTypeError(
            f"unknown mode {', '.join(unknown)!r}: pick from {choices}"
        )
    return [by_key[part] for part in picked]


def environment(directory: Path) -> dict[str, str]:
    """The environment of every process a mode starts: its own database, the fault, no retry
    back-off, nothing inherited that would point elsewhere."""
    env = {key: value for key, value in os.environ.items() if key not in DROPPED}
    env.update(
        FLOWFORGE_DB_PATH=str(directory / "flowforge.sqlite3"),
        FAIL_AT=workload.FAIL_AT,
        FLOWFORGE_RETRY_DELAYS=RETRY_DELAYS,
        PREFECT_HOME=str(directory / "prefect-home"),
        **NO_TELEMETRY,
        PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    )
    return env


class SharedPrefectServer:
    """The one Prefect server modes (b) and (c) use, started when first asked for."""

    def __init__(self, home: Path, resources: ExitStack) -> None:
        self.home, self.resources = home, resources
        self.started: tuple[str, int] | None = None

    def __call__(self) -> tuple[str, int]:
        if self.started is None:
            env = environment(self.home)
            self.started = self.resources.enter_context(prefect_server(self.home, env))
        return self.started


def run_mode(
    mode: Mode,
    specs: list[workload.OrderSpec],
    root: Path,
    prefect: SharedPrefectServer,
    database: Callable[[str], str] | None = None,
) -> Result:
    """Run one mode on a fresh database (a SQLite file, or `database(name)`: a new PostgreSQL
    database's URL) and check its books; a mode without books gets no database at all."""
    directory = root / f"{mode.letter}-{mode.name}"
    directory.mkdir()
    env = environment(directory)
    url = f"sqlite:///{directory / 'flowforge.sqlite3'}"
    if mode.books and database is not None:
        url = env["DATABASE_URL"] = database(f"bench_{mode.letter}")
    if mode.books:
        workload.receive(url, specs)
    ctx = Context(directory, specs, env, prefect, timeout=120 + 10 * len(specs))
    workload.write_orders(ctx.orders_file, specs)
    expected = workload.expected_counts(specs) if mode.books else {"completed": len(specs)}
    result = Result(mode, len(specs), expected=expected)
    print(f"== {mode.letter} {mode.title}: {len(specs)} orders", flush=True)
    try:
        result.measured = mode.run(ctx)
    except Unavailable as exc:
        result.status, result.reason = "unavailable", str(exc)
        return result
    except (ModeError, RuntimeError, OSError, ValueError) as exc:
        result.status, result.reason = "FAILED", f"{type(exc).__name__}: {exc} (logs: {directory})"
    if mode.books:
        result.books = workload.check(url, specs)
    else:
        counts = (result.measured.counts if result.measured else None) or {}
        result.books = workload.check_without_books(counts, specs, directory / "flowforge.sqlite3")
    if result.status == "ok" and not result.books.balanced:
        result.status, result.reason = "FAILED", "; ".join(result.books.problems)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = OneLineParser(
        prog="python -m bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--orders", type=whole_number(100_000), default=DEFAULT_ORDERS)
    parser.add_argument(
        "--quick", action="store_true", help=f"{QUICK_ORDERS} orders, {QUICK_CLI_ORDERS} CLI runs"
    )
    parser.add_argument("--modes", type=modes, help="e.g. d,e or floor,dbos (default: all)")
    parser.add_argument(
        "--database",
        choices=["sqlite", "postgres"],
        default="sqlite",
        help="postgres: a throwaway cluster from this machine's initdb/pg_ctl (modes b, d, e, f)",
    )
    parser.add_argument(
        "--rates", type=rates, help="mode g's offered orders/s, one run each: 6,9,12 (default 10)"
    )
    parser.add_argument("--json", type=Path, default=ROOT / "docs" / "bench.json")
    parser.add_argument("--chart", type=Path, default=ROOT / "docs" / "bench.png")
    args = parser.parse_args(argv)
    picked = args.modes or list(MODES)
    if args.database == "postgres":
        refused = [mode for mode in picked if not mode.postgres]
        names = ", ".join(f"{mode.letter} ({mode.name})" for mode in refused)
        if args.modes and refused:
            can = ", ".join(f"{mode.letter} ({mode.name})" for mode in MODES if mode.postgres)
            parser.error(f"--database postgres: {names} run on SQLite only; pick from {can}")
        if not postgres.available():
            parser.error(
                "--database postgres: PostgreSQL's server binaries (initdb, pg_ctl) are not "
                "installed"
            )
        if refused:
            print(f"--database postgres: {names} run on SQLite only: left out", flush=True)
        picked = [mode for mode in picked if mode.postgres]
    if args.rates:
        if all(mode.rate is None for mode in picked):
            parser.error("--rates: the open loop, mode g (service-open), is not among the modes")
        picked = at_rates(picked, args.rates)
    count = QUICK_ORDERS if args.quick else args.orders
    specs = workload.orders(count)
    root = Path(tempfile.mkdtemp(prefix="flowforge-bench-"))
    with ExitStack() as resources:
        prefect = SharedPrefectServer(root / "prefect", resources)
        database: Callable[[str], str] | None = None
        if args.database == "postgres":
            try:
                cluster = resources.enter_context(postgres.cluster(durable=True))
            except (OSError, subprocess.SubprocessError) as exc:
                shutil.rmtree(root, ignore_errors=True)
                detail = getattr(exc, "stderr", b"") or b""
                last = detail.decode(errors="replace").strip().splitlines()[-1:] or [str(exc)]
                parser.exit(2, f"{parser.prog}: error: PostgreSQL did not start: {last[0]}\n")
            database = functools.partial(postgres.create_database, cluster)

        results = []
        for mode in picked:
            limit = mode.max_orders and (QUICK_CLI_ORDERS if args.quick else mode.max_orders)
            run = specs[:limit] if limit else specs
            results.append(run_mode(mode, run, root, prefect, database))
    baselines = {r.mode.letter: r for r in results if r.mode.letter in "def" and r.status == "ok"}
    print(f"database: {DATABASES[args.database]}")
    print(table(results, baselines))
    open_loop = sustained(results)
    if open_loop:
        print(summary(open_loop))
    report = {
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "orders": count,
        "database": args.database,
        "workload": {"fail_at": workload.FAIL_AT, "retry_delays": RETRY_DELAYS},
        "machine": {"cpus": os.cpu_count(), "load_average_at_end": os.getloadavg()},
        "modes": [result.to_json(baselines) for result in results],
        "open_loop": open_loop,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2) + "\n")
    print(f"results written to {args.json}")
    print(chart(results, args.chart))
    failed = any(result.status == "FAILED" for result in results)
    if failed:
        print(f"logs and databases kept in {root}")
    else:
        shutil.rmtree(root, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
