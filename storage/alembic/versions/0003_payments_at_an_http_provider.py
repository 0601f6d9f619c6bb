"""Payments at an HTTP provider: `payments.provider` (existing rows are `embedded`) and the
`charge_requests` table that says whether a charge request may have reached the provider.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "charge_requests",
        sa.Column("idempotency_key", sa.String(), nullable=False),
        sa.Column("order_id", sa.String(), nullable=False),
        sa.Column("amount", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("charge_id", sa.String(), nullable=True),
        sa.Column("message", sa.String(), nullable=False),
        sa.Column("attempted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reached_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("idempotency_key"),
    )
    with op.batch_alter_table("charge_requests", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_charge_requests_order_id"), ["order_id"], unique=False)

    with op.batch_alter_table("payments", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("provider", sa.String(), nullable=False, server_default="embedded")
        )


def downgrade() -> None:
    with op.batch_alter_table("payments", schema=None) as batch_op:
        batch_op.drop_column("provider")

    with op.batch_alter_table("charge_requests", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_charge_requests_order_id"))

    op.drop_table("charge_requests")
