"""the simulated gateway's settlement ledger; reconciliations

`gateway_settlements`: every charge and refund the simulated gateway made (one charge
per order, one refund per charge), shared by every process; its settlement file is read
from it. `reconciliations`: each settlement file compared with the orders.

Revision ID: i22_reconciliation
Revises: i22_returns
Create Date: 2026-12-06 18:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "i22_reconciliation"
down_revision: str | None = "i22_returns"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "gateway_settlements",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("charge_id", sa.String(length=128), nullable=False),
        sa.Column("order_id", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("amount", sa.Numeric(precision=12, scale=2), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.CheckConstraint(
            "kind IN ('charge', 'refund')", name=op.f("ck_gateway_settlements_kind_known")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_gateway_settlements")),
    )
    op.create_index("ix_gateway_settlements_at", "gateway_settlements", ["at"], unique=False)
    op.create_index(
        "uq_gateway_settlements_charge_order_id",
        "gateway_settlements",
        ["order_id"],
        unique=True,
        postgresql_where=sa.text("kind = 'charge'"),
    )
    op.create_index(
        "uq_gateway_settlements_refund_charge_id",
        "gateway_settlements",
        ["charge_id"],
        unique=True,
        postgresql_where=sa.text("kind = 'refund'"),
    )
    op.create_table(
        "reconciliations",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column("source", sa.String(length=10), nullable=False),
        sa.Column("first_day", sa.Date(), nullable=True),
        sa.Column("last_day", sa.Date(), nullable=True),
        sa.Column("rows", sa.Integer(), nullable=False),
        sa.Column("matched", sa.Integer(), nullable=False),
        sa.Column("mismatches", sa.Integer(), nullable=False),
        sa.Column("missing_in_gateway", postgresql.JSONB(), nullable=False),
        sa.Column("missing_in_orders", postgresql.JSONB(), nullable=False),
        sa.Column("amount_mismatch", postgresql.JSONB(), nullable=False),
        sa.Column("duplicates", postgresql.JSONB(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reconciliations")),
    )
    op.create_index(
        op.f("ix_reconciliations_created_at"), "reconciliations", ["created_at"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_reconciliations_created_at"), table_name="reconciliations")
    op.drop_table("reconciliations")
    op.drop_index("uq_gateway_settlements_refund_charge_id", table_name="gateway_settlements")
    op.drop_index("uq_gateway_settlements_charge_order_id", table_name="gateway_settlements")
    op.drop_index("ix_gateway_settlements_at", table_name="gateway_settlements")
    op.drop_table("gateway_settlements")
