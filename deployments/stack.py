"""`python -m deployments.stack`: the whole service on one machine — the payment provider
(unless FLOWFORGE_PAYMENT_URL points at one, or --embedded-payments), a Prefect server (unless
PREFECT_API_URL points at one), the runner serving the deployments, the intake that runs the
orders, the HTTP API and the dashboard. Ctrl-C or SIGTERM stops every process it started."""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from prefect.settings import PREFECT_API_URL

from flows.prefect_api import NO_TELEMETRY, auth_string, die_with_parent, free_port
from storage.cli import OneLineParser, whole_number
from storage.db import migrate_database
from storage.errors import StorageUnavailable
from storage.prefect_db import prepare_prefect_database
from storage.settings import get_settings

ROOT = Path(__file__).resolve().parent.parent
DASHBOARD = ROOT / "dashboard" / "app.py"
READY_TIMEOUT_SECONDS = 90.0
# The Prefect server records task-run states and events in batches (~3x less CPU per order).
SERVER_BATCHING = {
    "PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_BATCH_SIZE": "200",
    "PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_FLUSH_INTERVAL": "1",
    "PREFECT_SERVER_SERVICES_EVENT_PERSISTER_BATCH_SIZE": "200",
    "PREFECT_SERVER_SERVICES_EVENT_PERSISTER_FLUSH_INTERVAL": "1",
}
STOP_TIMEOUT_SECONDS = 15.0
BACKOFF_SECONDS = (1.0, 2.0, 4.0, 8.0, 15.0, 30.0)
MAX_CRASHES = 5
CRASH_WINDOW_SECONDS = 300.0


class Stop(Exception):
    """A signal asked the stack to stop."""


@dataclass
class Child:
    """A process the stack started, and what it takes to start it again."""

    name: str
    url: str
    process: subprocess.Popen[bytes]
    argv: list[str]
    env: dict[str, str]
    started_at: float = field(default_factory=time.time)
    ready: Callable[[Child], bool] | None = None
    crashes: list[float] = field(default_factory=list)
    restart_at: float | None = None  # monotonic: when this crashed child starts again
    waiting_since: float | None = None  # monotonic: restarted then, not serving yet


def descendants(pid: int) -> set[int]:
    """Every live process below `pid` (read from /proc; empty where there is none)."""
    children: dict[int, list[int]] = defaultdict(list)
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            children[int(stat.read_text().rsplit(")", 1)[1].split()[1])].append(
                int(stat.parent.name)
            )
        except (OSError, IndexError, ValueError):
            continue
    found: set[int] = set()
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def start(name: str, url: str, argv: list[str], env: dict[str, str]) -> Child:
    """Start a child in its own process group, so it and everything it starts can be stopped."""
    return Child(name, url, _spawn(argv, env), argv, env)


def _spawn(argv: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    """In its own session (stopped as a group), and killed by the kernel if the stack is."""
    return subprocess.Popen(
        argv, cwd=ROOT, env=env, start_new_session=True, preexec_fn=die_with_parent
    )


def bring_up(
    children: list[Child],
    name: str,
    url: str,
    argv: list[str],
    env: dict[str, str],
    ready: Callable[[Child], bool],
) -> Child:
    """Start a part of the stack and wait until it serves; it is restarted if it crashes."""
    child = start(name, url, argv, env)
    child.ready = ready
    children.append(child)
    wait_for(child, lambda: ready(child), name)
    return child


def wait_ready(child: Child, check_url: str, timeout: float = READY_TIMEOUT_SECONDS) -> None:
    """Poll `check_url` until it answers 200; fail if the child dies or time runs out."""
    wait_for(child, lambda: answers(check_url), check_url, timeout)


def answers(url: str) -> bool:
    """True when `url` answers 200."""
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def file_touched(path: Path) -> Callable[[Child], bool]:
    """Ready when the child (re)created `path` after it started."""
    return lambda child: path.exists() and path.stat().st_mtime >= child.started_at - 1


def wait_for(
    child: Child, ready: Callable[[], bool], what: str, timeout: float = READY_TIMEOUT_SECONDS
) -> None:
    """Poll `ready()` until it is true; fail if the child dies first or time runs out (a child
    that was ready and has died since is the supervisor's to restart)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ready():
            return
        if child.process.poll() is not None:
            raise RuntimeError(f"{child.name} exited with code {child.process.returncode}")
        time.sleep(0.3)
    raise RuntimeError(f"{child.name} not ready after {timeout:.0f} s ({what})")


def signal_group(child: Child, signum: signal.Signals) -> None:
    """Send `signum` to the child's process group (if anything of it is left)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(child.process.pid, signum)


def stop(children: list[Child]) -> None:
    """SIGTERM every child's process group, newest first; SIGKILL whatever outlives the wait."""
    for child in reversed(children):
        group = child.process.pid
        doomed = descendants(group) | {group}
        signal_group(child, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            child.process.wait(STOP_TIMEOUT_SECONDS)
        deadline = time.monotonic() + STOP_TIMEOUT_SECONDS
        while alive(doomed) and time.monotonic() < deadline:
            time.sleep(0.1)
        signal_group(child, signal.SIGKILL)
        for pid in alive(doomed):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        child.process.poll()


def alive(pids: set[int]) -> set[int]:
    """The pids among `pids` that are still running (zombies count as gone)."""
    running = set()
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if state != "Z":
            running.add(pid)
    return running


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
    """Whether the stack starts a payment provider of its own."""
    return not (args.embedded_payments or get_settings().payment_url)


def provider_command(args: argparse.Namespace) -> tuple[list[str], dict[str, str]]:
    """The payment provider's command line and environment; its API key is in the environment
    only (every local user can read a command line)."""
    argv = [sys.executable, "-m", "provider", "--port", str(args.payment_port)]
    argv += ["--db", str(args.payment_db)]
    return argv, child_env("") | {"PROVIDER_API_KEY": get_settings().payment_api_key}


def launch_provider(args: argparse.Namespace, children: list[Child]) -> dict[str, str]:
    """Start the payment provider (see docs/payments.md), creating its database if there is
    none; the variables that point the other parts at it."""
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
    return {"FLOWFORGE_PAYMENT_URL": url, "FLOWFORGE_PAYMENT_API_KEY": env["PROVIDER_API_KEY"]}


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


def supervise(children: list[Child]) -> int:
    """Keep every part serving until a signal arrives (0): a child that exits is restarted
    after a growing pause while the others go on (orders are still recorded and wait); one
    that crashes more than `MAX_CRASHES` times within `CRASH_WINDOW_SECONDS` ends the stack
    (1). Each child has its own pause and readiness wait: the loop never waits on one."""
    while True:
        for child in children:
            if not look_after(child):
                return 1
        time.sleep(0.3)


def look_after(child: Child) -> bool:
    """One look at a child, without waiting for it: start it again when its pause is over, tell
    when it serves again, count a crash when it exits or is not ready in time. False once it
    crashed too often."""
    now = time.monotonic()
    if child.restart_at is not None:
        if now >= child.restart_at:
            signal_group(child, signal.SIGKILL)  # what the crashed one left behind
            child.process, child.started_at = _spawn(child.argv, child.env), time.time()
            child.restart_at, child.waiting_since = None, now
        return True
    if child.process.poll() is not None:
        return crashed(child, f"exited with code {child.process.returncode}")
    if child.waiting_since is None:
        return True
    if child.ready is None or child.ready(child):
        child.waiting_since = None
        print(f"{child.name} is serving again", flush=True)
    elif now - child.waiting_since > READY_TIMEOUT_SECONDS:
        signal_group(child, signal.SIGKILL)  # it hangs: nothing to stop gracefully
        child.process.wait()
        return crashed(child, f"not ready after {READY_TIMEOUT_SECONDS:.0f} s")
    return True


def crashed(child: Child, what: str) -> bool:
    """Count a crash and schedule the restart after the back-off (False: too many crashes);
    what the child left running gets the pause to exit on SIGTERM."""
    now = time.monotonic()
    child.crashes = [t for t in child.crashes if now - t < CRASH_WINDOW_SECONDS] + [now]
    child.waiting_since = None
    if len(child.crashes) > MAX_CRASHES:
        print(
            f"{child.name} {what}, {len(child.crashes)} times in "
            f"{CRASH_WINDOW_SECONDS:.0f} s: giving up",
            flush=True,
        )
        return False
    pause = BACKOFF_SECONDS[min(len(child.crashes), len(BACKOFF_SECONDS)) - 1]
    signal_group(child, signal.SIGTERM)
    child.restart_at = now + pause
    print(f"{child.name} {what}; restarting in {pause:g} s", flush=True)
    return True


def _raise_stop(signum: int, _frame: object) -> None:
    raise Stop(signal.Signals(signum).name)


def port_in_use(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


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
        help="charge in FlowForge's database instead of starting the payment provider",
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
    signal.signal(signal.SIGTERM, _raise_stop)
    signal.signal(signal.SIGINT, _raise_stop)
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
