"""`python -m deployments.stack`: the whole service on one machine — the local double of Stripe
(unless FLOWFORGE_PAYMENT_PROVIDER=stripe already names a Stripe, or --embedded-payments), a
Prefect server (unless
PREFECT_API_URL points at one), the runner serving the deployments, the intake that runs the
orders, the HTTP API and the dashboard. Ctrl-C or SIGTERM stops every process it started."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import tempfile
from pathlib import Path

from prefect.settings import PREFECT_API_URL

from deployments.processes import (
    Child,
    Stop,
    bring_up,
    file_touched,
    port_in_use,
    raise_stop,
    stop,
    supervise,
)
from flows.prefect_api import NO_TELEMETRY, answers, auth_string, free_port
from provider.__main__ import DEFAULT_API_KEY
from storage.arguments import OneLineParser, whole_number
from storage.db import migrate_database
from storage.errors import StorageUnavailable
from storage.prefect_db import prepare_prefect_database
from storage.settings import get_settings

ROOT = Path(__file__).resolve().parent.parent
DASHBOARD = ROOT / "dashboard" / "app.py"
# The Prefect server records task-run states and events in batches (~3x less CPU per order).
SERVER_BATCHING = {
    "PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_BATCH_SIZE": "200",
    "PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_FLUSH_INTERVAL": "1",
    "PREFECT_SERVER_SERVICES_EVENT_PERSISTER_BATCH_SIZE": "200",
    "PREFECT_SERVER_SERVICES_EVENT_PERSISTER_FLUSH_INTERVAL": "1",
}


def child_env(api_url: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        PREFECT_API_URL=api_url,
        **NO_TELEMETRY,
        PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")])),
    )
    if auth := auth_string():  # the Prefect server is as closed as the API
        env["PREFECT_API_AUTH_STRING"] = auth
    return env


def starts_provider(args: argparse.Namespace) -> bool:
    """Whether the stack starts the local double of Stripe."""
    return not (args.embedded_payments or get_settings().payment_provider == "stripe")


def provider_command(args: argparse.Namespace) -> tuple[list[str], dict[str, str]]:
    """The local double's command line and environment: its API key (`STRIPE_API_KEY`, else
    the double's default) is in the environment only (every local user can read a command
    line)."""
    argv = [sys.executable, "-m", "provider", "--port", str(args.payment_port)]
    argv += ["--db", str(args.payment_db)]
    key = get_settings().stripe_api_key.get_secret_value() or DEFAULT_API_KEY
    return argv, child_env("") | {"PROVIDER_API_KEY": key}


def launch_provider(args: argparse.Namespace, children: list[Child]) -> dict[str, str]:
    """Start the local double of Stripe (see docs/payments.md), creating its database if there
    is none; the variables that point the other parts at it."""
    url = f"http://127.0.0.1:{args.payment_port}"
    argv, env = provider_command(args)
    child = bring_up(
        children,
        "payment provider",
        url,
        [*argv, "--create"],
        env,
        lambda _child: answers(f"{url}/health"),
    )
    child.argv = argv  # a restart must not replace a database removed meanwhile by an empty one
    return {
        "FLOWFORGE_PAYMENT_PROVIDER": "stripe",
        "FLOWFORGE_STRIPE_API_BASE": url,
        "STRIPE_API_KEY": env["PROVIDER_API_KEY"],
    }


def launch(args: argparse.Namespace, children: list[Child]) -> None:
    """Start every part in order, each one serving before the next; append each to
    `children`."""
    python = sys.executable
    payments = launch_provider(args, children) if starts_provider(args) else {}
    api_url = PREFECT_API_URL.value() or ""
    if not api_url:
        api_url = f"http://127.0.0.1:{args.prefect_port}/api"
        prefect_home = Path(get_settings().prefect_home).expanduser().absolute()
        prefect_home.mkdir(parents=True, exist_ok=True)
        env = SERVER_BATCHING | child_env(api_url) | {"PREFECT_HOME": str(prefect_home)}
        if args.prefect_database_url:
            env["PREFECT_SERVER_DATABASE_CONNECTION_URL"] = args.prefect_database_url
        if "PREFECT_API_AUTH_STRING" in env:
            env["PREFECT_SERVER_API_AUTH_STRING"] = env["PREFECT_API_AUTH_STRING"]
        bring_up(
            children,
            "Prefect server (UI)",
            api_url.removesuffix("/api"),
            [python, "-m", "prefect", "server", "start", "--host", "127.0.0.1"]
            + ["--port", str(args.prefect_port)],
            env,
            lambda _child: answers(f"{api_url}/health"),
        )
    env = child_env(api_url) | payments
    runner_port = free_port()  # the runner's own health endpoint: it answers once it polls
    bring_up(
        children,
        "runner",
        "",
        [python, "-m", "deployments.serve"],
        env
        | {"PREFECT_RUNNER_SERVER_ENABLE": "true", "PREFECT_RUNNER_SERVER_PORT": str(runner_port)},
        lambda _child: answers(f"http://localhost:{runner_port}/health"),
    )
    ready_file = Path(tempfile.mkdtemp(prefix="flowforge-stack-")) / "intake.ready"
    bring_up(
        children,
        "intake",
        "",
        [python, "-m", "flows.intake", "--ready-file", str(ready_file)],
        env,
        file_touched(ready_file),
    )
    api_base = f"http://{get_settings().api_host}:{args.api_port}"
    bring_up(
        children,
        "API",
        api_base,
        [python, "-m", "api", "--port", str(args.api_port)],
        env,
        lambda _child: answers(f"{api_base}/health"),
    )
    if args.no_dashboard:
        return
    dashboard_url = f"http://127.0.0.1:{args.dashboard_port}"
    bring_up(
        children,
        "dashboard",
        dashboard_url,
        [python, "-m", "streamlit", "run", str(DASHBOARD), "--server.headless", "true"]
        + ["--server.address", "127.0.0.1", "--server.port", str(args.dashboard_port)]
        + ["--browser.gatherUsageStats", "false"],
        env,
        lambda _child: answers(f"{dashboard_url}/_stcore/health"),
    )


def busy_ports(args: argparse.Namespace) -> list[str]:
    """The ports this stack would listen on that something else already holds."""
    wanted = {"--api-port": args.api_port}
    if not PREFECT_API_URL.value():
        wanted["--prefect-port"] = args.prefect_port
    if not args.no_dashboard:
        wanted["--dashboard-port"] = args.dashboard_port
    if starts_provider(args):
        wanted["--payment-port"] = args.payment_port
    return [f"{port} ({flag})" for flag, port in wanted.items() if port_in_use(port)]


def main(argv: list[str] | None = None) -> int:
    parser = OneLineParser(prog="python -m deployments.stack", description=__doc__)
    port = whole_number(65535)
    parser.add_argument("--api-port", type=port, default=get_settings().api_port)
    parser.add_argument("--prefect-port", type=port, default=4200)
    parser.add_argument("--dashboard-port", type=port, default=8501)
    parser.add_argument("--no-dashboard", action="store_true")
    parser.add_argument("--payment-port", type=port, default=4300)
    parser.add_argument(
        "--payment-db",
        type=Path,
        default=Path(".flowforge/provider.sqlite3"),
        help="the payment provider's own database (default: .flowforge/provider.sqlite3)",
    )
    parser.add_argument(
        "--embedded-payments",
        action="store_true",
        help="charge in FlowForge's database instead of starting the local double of Stripe",
    )
    parser.add_argument(
        "--prefect-database-url",
        default=os.environ.get("PREFECT_SERVER_DATABASE_CONNECTION_URL"),
        help="the Prefect server's own database, e.g. postgresql+asyncpg://user@host/prefect "
        "(default: SQLite in FLOWFORGE_PREFECT_HOME; PREFECT_SERVER_DATABASE_CONNECTION_URL)",
    )
    args = parser.parse_args(argv)
    if busy := busy_ports(args):
        parser.error(f"already in use: {', '.join(busy)}; stop what holds it or pick another port")
    try:
        migrate_database()  # starting the stack creates (or upgrades) its database on purpose
        if args.prefect_database_url and not PREFECT_API_URL.value():
            prepare_prefect_database(args.prefect_database_url)
    except StorageUnavailable as exc:
        parser.error(str(exc))
    signal.signal(signal.SIGTERM, raise_stop)
    signal.signal(signal.SIGINT, raise_stop)
    children: list[Child] = []
    try:
        launch(args, children)
        print("\nFlowForge is up:", flush=True)
        for child in children:
            if child.url:
                print(f"  {child.name:<20} {child.url}", flush=True)
        print("Ctrl-C stops everything.\n", flush=True)
        return supervise(children)
    except Stop:
        return 0
    except RuntimeError as exc:
        print(f"stack failed: {exc}", file=sys.stderr, flush=True)
        return 1
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        print("stopping…", flush=True)
        stop(children)


if __name__ == "__main__":
    sys.exit(main())
