"""The local double of Stripe as a subprocess (`python -m provider`), and the official SDK's
client of it, for the provider's own tests and FlowForge's payment tests."""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import stripe

from flows.prefect_api import free_port
from tests.support import ROOT, child_env

API_KEY = "sk_test_suite"
AUTH = {"Authorization": f"Bearer {API_KEY}"}


@dataclass(frozen=True)
class Running:
    """A provider process: its base URL, the process, and the file its stderr goes to."""

    url: str
    process: subprocess.Popen[bytes]
    log: Path


@contextmanager
def running_provider(
    db: Path, *args: str, port: int | None = None, create: bool = True, **env: str
) -> Iterator[Running]:
    """`python -m provider` on `port` (default: a free one), its key in its environment, until
    the block ends (then stopped if still up); `create`: with `--create`."""
    port = port or free_port()
    command = [sys.executable, "-m", "provider", "--port", str(port), "--db", str(db)]
    if create:
        command.append("--create")
    with tempfile.TemporaryDirectory(prefix="provider-log-") as logs:
        log = Path(logs) / "stderr.log"
        with log.open("wb") as stderr:
            process = subprocess.Popen(
                [*command, *args],
                cwd=ROOT,
                env=child_env(**{"PROVIDER_API_KEY": API_KEY, **env}),
                stdout=subprocess.DEVNULL,
                stderr=stderr,
            )
        running = Running(f"http://127.0.0.1:{port}", process, log)
        try:
            wait_for_health(running)
            yield running
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def wait_for_health(running: Running, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if running.process.poll() is not None:
            raise RuntimeError(f"provider exited: {running.log.read_text()}")
        try:
            if httpx.get(f"{running.url}/health", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"provider did not answer /health within {timeout} s")
        time.sleep(0.05)


def sdk(url: str, api_key: str = API_KEY, read_timeout: float = 5.0) -> stripe.StripeClient:
    """The official SDK's client of the double at `url` (over httpx, no retries of its own)."""
    http = stripe.HTTPXClient(
        timeout=httpx.Timeout(read_timeout, connect=2.0), allow_sync_methods=True
    )
    return stripe.StripeClient(
        api_key, base_addresses={"api": url}, http_client=http, max_network_retries=0
    )


def set_faults(url: str, config: dict) -> dict:
    """Replace the double's fault switches (and reset their counters); the new switches."""
    response = httpx.put(f"{url}/v1/test/faults", json=config, headers=AUTH)
    response.raise_for_status()
    return response.json()
