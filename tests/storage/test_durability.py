"""Every connection FlowForge opens to its SQLite file commits durably: WAL with
`synchronous=FULL` (NORMAL can roll back the last commits at a power cut)."""

from __future__ import annotations

from contextlib import ExitStack

from sqlalchemy import Connection, text

from storage.db import READONLY_OPTION, get_engine, session_scope

FULL = 2  # what `PRAGMA synchronous` reads for FULL (NORMAL is 1)


def test_every_connection_commits_with_synchronous_full(db):
    engine = get_engine()
    with ExitStack() as open_at_once:  # so each is a connection of its own from the pool
        writer = open_at_once.enter_context(session_scope()).connection()
        readers = [
            open_at_once.enter_context(session_scope(readonly=True)).connection() for _ in range(3)
        ]
        raw = [
            open_at_once.enter_context(engine.connect()).execution_options(
                **{READONLY_OPTION: True}
            )
            for _ in range(4)
        ]
        connections: list[Connection] = [writer, *readers, *raw]
        assert len({id(c.connection.dbapi_connection) for c in connections}) == 8
        for connection in connections:
            assert connection.execute(text("PRAGMA synchronous")).scalar_one() == FULL
            assert connection.execute(text("PRAGMA journal_mode")).scalar_one() == "wal"
