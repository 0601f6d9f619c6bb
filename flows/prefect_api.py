"""Which Prefect server a one-off command (`flows.fulfill`, `flows.cancel`, `flows.reconcile`,
the dashboard without a server) talks to: `PREFECT_API_URL` when it is set; otherwise a server
already serving on this machine's default port (the stack's, or `prefect server start`);
otherwise a temporary server of this process's own. Unlike Prefect's built-in temporary
server, that one dies with the process even when the process is killed (no orphans), waits as
long as a loaded machine needs, and starts under a lock on `PREFECT_HOME` so that concurrent
first starts do not race on its database migrations."""

from __future__ import annotations

import atexit
import ctypes
import fcntl
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path

import httpx
from prefect.client.orchestration import get_client
from prefect.exceptions import PrefectHTTPStatusError
from prefect.settings import (
    PREFECT_API_AUTH_STRING,
    PREFECT_API_URL,
    PREFECT_HOME,
    PREFECT_UI_URL,
    temporary_settings,
)
from prefect.settings.legacy import Setting

from storage.settings import get_settings

DEFAULT_LOCAL_API = "http://127.0.0.1:4200/api"
STARTUP_TIMEOUT_SECONDS = 180.0
PROBE_TIMEOUT_SECONDS = 0.5  # a Prefect server on this machine answers its health check at once
PREFECT_AUTH_USER = "flowforge"
PR_SET_PDEATHSIG = 1
# in the environment of every Prefect server FlowForge starts: no telemetry, no internet here
NO_TELEMETRY = {"PREFECT_SERVER_ANALYTICS_ENABLED": "false", "DO_NOT_TRACK": "1"}


class PrefectUnavailable(RuntimeError):
    """No Prefect server could be reached or started."""


class PrefectAuthMissing(RuntimeError):
    """The Prefect server turns this process away: it sends no credentials, or wrong ones."""


def auth_string() -> str | None:
    """The Prefect server's basic-auth string when FlowForge's token closes it."""
    token = get_settings().api_token
    return f"{PREFECT_AUTH_USER}:{token}" if token else None


def run_ui_url(kind: str, run_id: str) -> str | None:
    """The Prefect UI page of a run (`kind` is `flow-run` or `task-run`), or None when no UI
    URL is configured."""
    ui_url = PREFECT_UI_URL.value()
    return f"{ui_url.rstrip('/')}/runs/{kind}/{run_id}" if ui_url else None


@contextmanager
def prefect_api() -> Iterator[None]:
    """Point Prefect's client at a server for the duration (see the module's docstring)."""
    if PREFECT_API_URL.value():
        yield
        return
    url = DEFAULT_LOCAL_API if _serves(DEFAULT_LOCAL_API) else _temporary_server()
    with temporary_settings(updates=_local_settings(url)):
        yield


def _local_settings(url: str) -> dict[Setting, str]:
    """Prefect's client settings for a server found or started here (FlowForge's token as
    its auth string unless PREFECT_API_AUTH_STRING is set)."""
    updates: dict[Setting, str] = {PREFECT_API_URL: url}
    if PREFECT_API_AUTH_STRING.value() is None and (auth := auth_string()):
        updates[PREFECT_API_AUTH_STRING] = auth
    return updates


def check_access() -> None:
    """Raise `PrefectAuthMissing` when the Prefect server already serving for this process
    (PREFECT_API_URL, else one on the default port) turns its client away (401): checked
    before a command records anything, since every call after would fail the same way (and a
    pipeline would retry it for ever). A server that does not answer is left to the command."""
    if PREFECT_API_URL.value():
        updates: dict[Setting, str] = {}
    elif _serves(DEFAULT_LOCAL_API):
        updates = _local_settings(DEFAULT_LOCAL_API)
    else:
        return
    with temporary_settings(updates=updates), get_client(sync_client=True) as client:
        try:
            client.api_version()
        except PrefectHTTPStatusError as exc:
            if exc.response.status_code == httpx.codes.UNAUTHORIZED:
                raise PrefectAuthMissing(_refusal(PREFECT_API_URL.value())) from None
        except (httpx.HTTPError, OSError):
            return


def _refusal(api_url: str) -> str:
    if PREFECT_API_AUTH_STRING.value():
        return f"the Prefect server at {api_url} refuses PREFECT_API_AUTH_STRING (401 Unauthorized)"
    return (
        f"the Prefect server at {api_url} requires credentials (401 Unauthorized): set "
        "PREFECT_API_AUTH_STRING (for the stack's: flowforge:<its FLOWFORGE_API_TOKEN>)"
    )


def _serves(api_url: str) -> bool:
    """True when a Prefect server answers its health check at `api_url`."""
    return answers(f"{api_url}/health", PROBE_TIMEOUT_SECONDS)


@cache
def _temporary_server() -> str:
    """Start this process's own server once; its API URL."""
    home = Path(PREFECT_HOME.value()).expanduser()
    home.mkdir(parents=True, exist_ok=True)
    with (home / ".flowforge-server.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        port = free_port()
        api_url = f"http://127.0.0.1:{port}/api"
        process = _spawn_dying_with_us(
            [sys.executable, "-m", "prefect", "server", "start", "--no-ui"]
            + ["--host", "127.0.0.1", "--port", str(port)]
        )
        atexit.register(process.terminate)
        deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
        while not _serves(api_url):
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                raise PrefectUnavailable(
                    "no Prefect server: PREFECT_API_URL is not set, none answers on "
                    f"{DEFAULT_LOCAL_API}, and a temporary one did not start within "
                    f"{STARTUP_TIMEOUT_SECONDS:.0f} s (exit code {process.poll()})"
                )
            time.sleep(0.2)
    return api_url


def _spawn_dying_with_us(argv: list[str]) -> subprocess.Popen[bytes]:
    """Start `argv` from a thread that lives as long as this process: the kernel kills the
    child when that thread, i.e. this process, ends — however it ends."""
    started: list[subprocess.Popen[bytes]] = []
    ready = threading.Event()

    def keeper() -> None:
        started.append(
            subprocess.Popen(
                argv,
                env=os.environ | NO_TELEMETRY,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                preexec_fn=die_with_parent,
            )
        )
        ready.set()
        started[0].wait()

    threading.Thread(target=keeper, name="prefect-server-keeper", daemon=True).start()
    ready.wait()
    return started[0]


def die_with_parent() -> None:
    """In a child before it runs: the kernel sends it SIGKILL when its parent thread ends."""
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def answers(url: str, timeout: float = 2.0) -> bool:
    """True when `url` answers 200 within `timeout` seconds: a health check, of a Prefect
    server here and of every part the stack supervises."""
    try:
        return httpx.get(url, timeout=timeout).status_code == 200
    except httpx.HTTPError:
        return False
