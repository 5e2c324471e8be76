"""returns: order_returns (a buyer's return request and the operator's decision);
orders.goods_returned (an approved return's units go on hand, never back on sale)

Revision ID: i22_returns
Revises: i22_2
Create Date: 2026-12-06 18:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "i22_returns"
down_revision: str | None = "i22_2"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "orders",
        sa.Column("goods_returned", sa.Boolean(), server_default=sa.false(), nullable=False),
    )
    op.create_table(
        "order_returns",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("order_id", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.String(length=128), nullable=False),
        sa.Column("event_id", sa.BigInteger(), nullable=True),
        sa.Column("campaign_id", sa.BigInteger(), nullable=True),
        sa.Column("reason", sa.String(length=20), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("rejection_reason", sa.Text(), nullable=True),
        sa.Column("decided_by", sa.String(length=128), nullable=True),
        sa.Column(
            "requested_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "reason IN ('damaged', 'wrong_item', 'not_as_described', 'changed_mind', 'other')",
            name=op.f("ck_order_returns_reason_known"),
        ),
        sa.CheckConstraint(
            "status IN ('requested', 'approved', 'rejected')",
            name=op.f("ck_order_returns_status_known"),
        ),
        sa.CheckConstraint(
            "status <> 'rejected' OR rejection_reason IS NOT NULL",
            name=op.f("ck_order_returns_rejection_has_reason"),
        ),
        sa.ForeignKeyConstraint(
            ["order_id"], ["orders.id"], name=op.f("fk_order_returns_order_id_orders")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_order_returns")),
    )
    op.create_index(op.f("ix_order_returns_order_id"), "order_returns", ["order_id"], unique=False)
    op.create_index(
        op.f("ix_order_returns_campaign_id"), "order_returns", ["campaign_id"], unique=False
    )
    op.create_index(
        "ix_order_returns_event_id_id",
        "order_returns",
        ["event_id", sa.text("id DESC")],
        unique=False,
    )
    op.create_index(
        "uq_order_returns_order_id_requested",
        "order_returns",
        ["order_id"],
        unique=True,
        postgresql_where=sa.text("status = 'requested'"),
    )


def downgrade() -> None:
    op.drop_index(
        "uq_order_returns_order_id_requested",
        table_name="order_returns",
        postgresql_where=sa.text("status = 'requested'"),
    )
    op.drop_index("ix_order_returns_event_id_id", table_name="order_returns")
    op.drop_index(op.f("ix_order_returns_campaign_id"), table_name="order_returns")
    op.drop_index(op.f("ix_order_returns_order_id"), table_name="order_returns")
    op.drop_table("order_returns")
    op.drop_column("orders", "goods_returned")
