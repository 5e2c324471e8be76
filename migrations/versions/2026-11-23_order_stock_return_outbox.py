"""order stock-return outbox: orders.stock_returned_at and its partial index

A cancelled or refunded order gives its units back after the status change commits
(Redis first, then the ledger row). `stock_returned_at` is set with that ledger row, so
the worker finds every order whose return was interrupted with one small index scan.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 18:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

DUE = "status IN ('cancelled', 'refunded') AND stock_returned_at IS NULL"


def upgrade() -> None:
    op.add_column("orders", sa.Column("stock_returned_at", sa.DateTime(timezone=True)))
    # Orders whose units already came back (a ledger row exists) are not due again.
    op.execute(
        """
        UPDATE orders AS o SET stock_returned_at = l.created_at
        FROM inventory_ledger AS l
        WHERE l.order_id = o.id AND l.reason IN ('released', 'restocked')
        """
    )
    op.create_index(
        "ix_orders_stock_return_due",
        "orders",
        ["id"],
        unique=False,
        postgresql_where=sa.text(DUE),
    )


def downgrade() -> None:
    op.drop_index("ix_orders_stock_return_due", table_name="orders", postgresql_where=sa.text(DUE))
    op.drop_column("orders", "stock_returned_at")
