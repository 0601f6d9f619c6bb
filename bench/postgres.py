"""A throwaway PostgreSQL cluster started from the machine's server binaries (`initdb`,
`pg_ctl`; as the `postgres` system user when run as root: initdb and pg_ctl refuse root),
removed when the block ends. Used by `python -m bench --database postgres` and the tests
(tests/postgres.py)."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from flows.prefect_api import free_port


def _binary(name: str) -> str | None:
    """The server binary `name` on PATH, else in the newest /usr/lib/postgresql/*/bin."""
    found = shutil.which(name)
    if found:
        return found
    versions = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"))
    return str(versions[-1]) if versions else None


def available() -> bool:
    """True when the machine has the server binaries a cluster needs."""
    return all(_binary(name) for name in ("initdb", "pg_ctl"))


def _as_cluster_owner(command: list[str]) -> list[str]:
    """`command` run as the `postgres` user when this process is root."""
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


@contextmanager
def cluster(durable: bool = False) -> Iterator[str]:
    """Start a cluster on a free port; yield a `postgresql+psycopg://` URL of its `postgres`
    database. `durable=False` (the tests) runs it with `fsync=off`; `durable=True` (the bench)
    keeps PostgreSQL's defaults, every commit flushed to disk."""
    workdir = Path(tempfile.mkdtemp(prefix="flowforge-pg-"))
    data = workdir / "data"
    if os.geteuid() == 0:
        shutil.chown(workdir, "postgres", "postgres")
    port = free_port()
    user = "postgres" if os.geteuid() == 0 else os.environ.get("USER", "postgres")
    run = {"check": True, "capture_output": True, "timeout": 120}
    subprocess.run(
        _as_cluster_owner(
            [_binary("initdb"), "-D", str(data), "-U", user, "-A", "trust", "--no-sync"]
        ),
        **run,
    )
    options = f"-p {port} -k {workdir} -c listen_addresses=127.0.0.1"
    if not durable:
        options += " -c fsync=off"
    subprocess.run(
        _as_cluster_owner(
            [
                _binary("pg_ctl"),
                "-D",
                str(data),
                "-o",
                options,
                "-w",
                "-l",
                str(workdir / "log"),
                "start",
            ]
        ),
        **run,
    )
    try:
        url = f"postgresql+psycopg://{user}@127.0.0.1:{port}/postgres"
        _wait_ready(url)
        yield url
    finally:
        subprocess.run(
            _as_cluster_owner([_binary("pg_ctl"), "-D", str(data), "-m", "immediate", "stop"]),
            capture_output=True,
            timeout=60,
        )
        shutil.rmtree(workdir, ignore_errors=True)


def _wait_ready(url: str) -> None:
    """Return once the cluster accepts a connection (30 s at most)."""
    import sqlalchemy

    engine = sqlalchemy.create_engine(url)
    deadline = time.monotonic() + 30
    while True:
        try:
            with engine.connect():
                return
        except sqlalchemy.exc.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
        finally:
            engine.dispose()


def create_database(url: str, name: str) -> str:
    """Create database `name` on the cluster of `url`; return its URL."""
    import sqlalchemy

    engine = sqlalchemy.create_engine(url, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.execute(sqlalchemy.text(f'CREATE DATABASE "{name}"'))
    engine.dispose()
    return url.rsplit("/", 1)[0] + "/" + name
