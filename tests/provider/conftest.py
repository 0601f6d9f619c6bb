"""The real provider service as a subprocess, started once per session."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from provider.client import ProviderClient

REPO = Path(__file__).resolve().parents[2]
API_KEY = "sk_test_suite"


def child_env(**extra: str) -> dict[str, str]:
    """The environment of every process these tests start."""
    env = {**os.environ, "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "DO_NOT_TRACK": "1"}
    env.pop("PROVIDER_FAULTS", None)
    return {**env, **extra}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass(frozen=True)
class Running:
    """A provider process: its base URL, the process, and the file its stderr goes to."""

    url: str
    process: subprocess.Popen[bytes]
    log: Path


@contextmanager
def running_provider(db: Path, *args: str, **env: str) -> Iterator[Running]:
    """`python -m provider` on a free port until the block ends (then stopped if still up)."""
    port = free_port()
    command = [sys.executable, "-m", "provider", "--port", str(port), "--db", str(db)]
    with tempfile.TemporaryDirectory(prefix="provider-log-") as logs:
        log = Path(logs) / "stderr.log"
        with log.open("wb") as stderr:
            process = subprocess.Popen(
                [*command, "--api-key", API_KEY, *args],
                cwd=REPO,
                env=child_env(**env),
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


@pytest.fixture(scope="session")
def provider(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    """The session's provider process."""
    with running_provider(tmp_path_factory.mktemp("provider") / "p.sqlite3") as running:
        yield running


@pytest.fixture
def provider_url(provider: Running) -> str:
    return provider.url


@pytest.fixture
def client(provider_url: str) -> Iterator[ProviderClient]:
    """A client on the session's provider; the faults are cleared after each test."""
    with ProviderClient(provider_url, API_KEY) as client:
        yield client
        client.set_faults({})


@pytest.fixture
def key() -> str:
    """A fresh idempotency-key prefix (the session's database is shared)."""
    return f"k-{uuid.uuid4().hex[:12]}"
