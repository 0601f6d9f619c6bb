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
import stripe

from tests.provider.helpers import AUTH, running_provider, sdk
from tests.provider.test_api import confirm, intent
from tests.provider.test_cli import provider_exits
from tests.support import ROOT, child_env


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
    with running_provider(db) as running:
        client = sdk(running.url)
        made = confirm(client, intent(client, "k-1").id, "k-1")
        change(db)
        reason = (
            f"database {db} was removed or replaced since the provider opened it: restore it,"
            " or restart the provider (with --create to start afresh)"
        )
        answers = [
            httpx.get(f"{running.url}/health"),
            httpx.get(f"{running.url}/v1/payment_intents/{made.id}", headers=AUTH),
            httpx.get(f"{running.url}/v1/payment_intents", headers=AUTH),
            httpx.post(
                f"{running.url}/v1/payment_intents",
                data={"amount": 5, "currency": "usd"},
                headers={**AUTH, "Idempotency-Key": "k-2"},
            ),
            httpx.post(
                f"{running.url}/v1/refunds",
                data={"payment_intent": made.id},
                headers={**AUTH, "Idempotency-Key": "k-3"},
            ),
        ]
        for response in answers:
            assert response.status_code == 503, response.text
            assert response.json() == {
                "error": {"type": "api_error", "message": reason, "code": "database_unavailable"}
            }
        with pytest.raises(stripe.APIError) as caught:
            intent(client, "k-4")
        assert caught.value.http_status == 503
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


@pytest.mark.e2e
def test_the_books_of_the_provider_before_stripe_are_refused(tmp_path: Path) -> None:
    """A file of the provider that spoke its own contract cannot be read as PaymentIntents: a
    start on it is one line, exit 2, and the file is left as it was."""
    db = tmp_path / "p.sqlite3"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE charges (id TEXT, idempotency_key TEXT)")
    before = db.read_bytes()
    assert provider_exits({}, "--db", str(db)) == [
        f"python -m provider: error: database {db} holds the books of the provider before it"
        " spoke Stripe's API (schema version 0): keep it for the record, and start with --create"
        " on another file"
    ]
    assert db.read_bytes() == before
