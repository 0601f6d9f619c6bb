"""Orders with lines: `orders.lines` (every existing order becomes the one line of its
`product_id` and `quantity`), and a reservation and a warehouse record per line of an order
(unique per order and product instead of per order).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

ONE_LINE = {
    "sqlite": "json_array(json_object('product_id', product_id, 'quantity', quantity))",
    "postgresql": "json_build_array(json_build_object('product_id', product_id, "
    "'quantity', quantity))",
}
PER_LINE = {  # table: its unique constraint on (order_id, product_id)
    "reservations": "uq_reservations_line",
    "warehouse_records": "uq_warehouse_records_line",
}


def upgrade() -> None:
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.add_column(sa.Column("lines", sa.JSON(), nullable=True))
    op.execute(f"UPDATE orders SET lines = {ONE_LINE[op.get_bind().dialect.name]}")
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.alter_column("lines", existing_type=sa.JSON(), nullable=False)
    for table, constraint in PER_LINE.items():
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_index(f"ix_{table}_order_id")
            batch_op.create_index(f"ix_{table}_order_id", ["order_id"], unique=False)
            batch_op.create_unique_constraint(constraint, ["order_id", "product_id"])


def downgrade() -> None:
    carts = op.get_bind().execute(
        sa.text("SELECT order_id FROM orders WHERE json_array_length(lines) > 1")
    )
    if carts.first() is not None:
        raise RuntimeError("orders with several lines exist: revision 0003 cannot hold them")
    for table, constraint in PER_LINE.items():
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_constraint(constraint, type_="unique")
            batch_op.drop_index(f"ix_{table}_order_id")
            batch_op.create_index(f"ix_{table}_order_id", ["order_id"], unique=True)
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.drop_column("lines")
