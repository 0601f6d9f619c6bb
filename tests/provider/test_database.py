"""The provider's database file removed or replaced while it runs: 503 with a reason, never a
new empty file (which a restart would then use)."""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from provider.client import InDoubt, ProviderClient
from tests.provider.helpers import API_KEY, running_provider
from tests.support import ROOT, child_env

AUTH = {"Authorization": f"Bearer {API_KEY}"}


def remove(db: Path) -> None:
    for path in db.parent.glob(f"{db.name}*"):  # the file and its WAL journal
        path.unlink()


def replace(db: Path) -> None:
    other = db.with_name("other.sqlite3")
    sqlite3.connect(other).close()
    shutil.move(other, db)


@pytest.mark.e2e
@pytest.mark.parametrize("change", [remove, replace])
def test_a_database_gone_while_running_is_503_and_not_recreated(change, tmp_path: Path) -> None:
    db = tmp_path / "p.sqlite3"
    with running_provider(db) as running, ProviderClient(running.url, API_KEY) as client:
        made = client.charge(idempotency_key="k-1", amount=5, payment_method="pm", order_id="o")
        change(db)
        reason = (
            f"database {db} was removed or replaced since the provider opened it: restore it,"
            " or restart the provider (with --create to start afresh)"
        )
        answers = [
            httpx.get(f"{running.url}/health"),
            httpx.get(f"{running.url}/v1/charges/{made.id}", headers=AUTH),
            httpx.get(f"{running.url}/v1/charges", headers=AUTH),
            httpx.post(
                f"{running.url}/v1/charges",
                json={"amount": 5, "payment_method": "pm"},
                headers={**AUTH, "Idempotency-Key": "k-2"},
            ),
            httpx.post(
                f"{running.url}/v1/refunds",
                json={"charge": made.id},
                headers={**AUTH, "Idempotency-Key": "k-3"},
            ),
        ]
        for response in answers:
            assert response.status_code == 503, response.text
            assert response.json() == {
                "error": {"type": "api_error", "message": reason, "code": "database_unavailable"}
            }
        with pytest.raises(InDoubt):
            client.charge(idempotency_key="k-4", amount=5, payment_method="pm", order_id="o")
        assert client.health() is False
        log = running.log.read_text()
    assert "Traceback" not in log, log
    if change is remove:
        assert list(tmp_path.glob("p.sqlite3*")) == []  # nothing recreated, for a restart to use
        restart = subprocess.run(
            [sys.executable, "-m", "provider", "--port", "0", "--db", str(db)],
            cwd=ROOT,
            env=child_env(),
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert restart.returncode == 2
        assert "does not exist: start with --create" in restart.stderr
    else:
        assert sqlite3.connect(db).execute("SELECT name FROM sqlite_master").fetchall() == []
