"""A real headless Chromium loads the running dashboard and finds the KPIs and an order in
the rendered page. Skipped only where chromium is missing outside CI; CI installs it."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from dashboard.overview import COUNT_LABELS, HEALTH_LABELS
from tests.dashboard.conftest import Filled
from tests.dashboard.helpers import APP
from tests.support import PYTHON, ROOT, child_env

CHROMIUM = shutil.which("chromium")
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
)
# virtual time runs ahead of the wall clock: the DOM is read late, the screenshot is taken
# before the page's 5 s auto-refresh would fade it for a rerun
DOM_BUDGET, SCREENSHOT_BUDGET = "--virtual-time-budget=20000", "--virtual-time-budget=4500"
# FLOWFORGE_UPDATE_SCREENSHOT=1 keeps the screenshot as docs/dashboard.png (the README's)
SCREENSHOT = ROOT / "docs" / "dashboard.png"
PATIENCE_SECONDS = 90  # the server's first script run imports Prefect

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        CHROMIUM is None and os.environ.get("CI") != "true",
        reason="Debian's chromium is not installed (CI installs it)",
    ),
]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_until_healthy(url: str, server: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert server.poll() is None, f"streamlit exited:\n{log.read_text()}"
        try:
            if httpx.get(f"{url}/_stcore/health").status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    pytest.fail(f"streamlit did not answer within 30 s:\n{log.read_text()}")


@pytest.fixture
def served(filled: Filled, tmp_path: Path) -> Iterator[str]:
    """`streamlit run dashboard/app.py` on the filled database; yields its URL."""
    port, log = free_port(), tmp_path / "streamlit.log"
    with log.open("w") as output:
        server = subprocess.Popen(
            [PYTHON, "-m", "streamlit", "run", str(APP), "--server.headless", "true",
             "--server.address", "127.0.0.1", "--server.port", str(port),
             "--browser.gatherUsageStats", "false"],
            cwd=ROOT, env=child_env(FLOWFORGE_DB_PATH=str(filled.path)),
            stdout=output, stderr=subprocess.STDOUT,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_healthy(url, server, log)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=10)


def chromium(url: str, profile: Path, *options: str) -> str:
    """Load `url` in headless Chromium; returns what it printed (the DOM with --dump-dom)."""
    assert CHROMIUM, "chromium is not installed"
    done = subprocess.run(
        [CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *options, url],
        capture_output=True,
        text=True,
        timeout=120,
    )
    return done.stdout


@pytest.mark.e2e
def test_chromium_renders_the_kpis_and_the_orders(served: str, filled: Filled, tmp_path: Path):
    newest = filled.orders["needs_attention"].order_id
    expected = [*COUNT_LABELS, *HEALTH_LABELS, "audit clean", newest]
    deadline = time.monotonic() + PATIENCE_SECONDS
    missing = expected
    while missing and time.monotonic() < deadline:  # rendered client-side after the first run
        dom = chromium(served, tmp_path / "profile", DOM_BUDGET, "--dump-dom")
        missing = [text for text in expected if text not in dom]
    assert not missing, f"not in the rendered page: {missing}"
    shot = (
        SCREENSHOT if os.environ.get("FLOWFORGE_UPDATE_SCREENSHOT") == "1" else tmp_path / "p.png"
    )
    for _ in range(3):
        options = (SCREENSHOT_BUDGET, "--window-size=1400,2400", f"--screenshot={shot}")
        chromium(served, tmp_path / "profile", *options)
        if shot.stat().st_size > 100_000:  # a rendered page, not a blank one
            break
    assert shot.stat().st_size > 100_000
