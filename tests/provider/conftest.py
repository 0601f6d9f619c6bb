"""The real provider service as a subprocess, started once per session."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
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


@contextmanager
def running_provider(db: Path, *args: str, **env: str) -> Iterator[str]:
    """`python -m provider` on a free port until the block ends; yields its base URL."""
    port = free_port()
    command = [sys.executable, "-m", "provider", "--port", str(port), "--db", str(db)]
    process = subprocess.Popen(
        [*command, "--api-key", API_KEY, *args],
        cwd=REPO,
        env=child_env(**env),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 15
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"provider exited: {process.stderr.read().decode()}")
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("provider did not answer /health within 15 s")
            time.sleep(0.05)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        process.stderr.close()


@pytest.fixture(scope="session")
def provider_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with running_provider(tmp_path_factory.mktemp("provider") / "p.sqlite3") as url:
        yield url


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
