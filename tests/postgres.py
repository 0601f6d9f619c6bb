"""A throwaway PostgreSQL cluster started from the machine's binaries (as the `postgres`
system user when the tests run as root: initdb and pg_ctl refuse root). The helper lives in
bench/postgres.py, which `python -m bench --database postgres` uses too; the tests' cluster
runs with `fsync=off`."""

from __future__ import annotations

from bench.postgres import available, cluster, create_database

__all__ = ["available", "cluster", "create_database"]
