"""Alembic's environment: migrations run on the connection that `storage.migrations` hands over,
inside its transaction."""

from __future__ import annotations

from alembic import context
from sqlalchemy import TypeDecorator
from sqlmodel import SQLModel

import storage.models  # noqa: F401  (registers the tables in SQLModel.metadata)


def render_item(kind: str, item: object, _context: object) -> str | bool:
    """Autogenerate writes SQLModel's column types as the SQLAlchemy types they wrap, so the
    scripts never depend on SQLModel's internals."""
    if (
        kind == "type"
        and isinstance(item, TypeDecorator)
        and type(item).__module__.startswith("sqlmodel")
    ):
        return f"sa.{item.impl!r}"
    return False


context.configure(
    connection=context.config.attributes["connection"],
    target_metadata=SQLModel.metadata,
    render_as_batch=True,  # SQLite alters a table by copying it
    render_item=render_item,
)
with context.begin_transaction():
    context.run_migrations()
