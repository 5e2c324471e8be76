"""live sale controls: the operators' audit log, low-stock thresholds, peak limits

- `operator_actions`: every operator change (who, what, on which target, before and
  after), written in the transaction of the change itself.
- `event_items.low_stock_threshold`: remaining stock below which the item is flagged.
- `event_items.peak_per_user_limit`: the highest per-user limit the item ever had, so a
  limit lowered mid-sale does not make earlier, lawful purchases look like breaches.
- `event_items.terms_version`: bumped by every mid-sale change of the item's terms, so
  Redis applies two changes in the order Postgres committed them.

Revision ID: i11_1
Revises: i10_1
Create Date: 2026-11-23 20:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "i11_1"
down_revision: str | None = "i10_1"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "operator_actions",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column(
            "at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
        sa.Column("actor", sa.String(length=128), nullable=False),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("target", sa.String(length=128), nullable=False),
        sa.Column("event_id", sa.BigInteger(), nullable=True),
        sa.Column("before", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("after", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_operator_actions")),
    )
    op.create_index(
        "ix_operator_actions_event_id_id",
        "operator_actions",
        ["event_id", sa.text("id DESC")],
    )
    op.add_column("event_items", sa.Column("low_stock_threshold", sa.Integer(), nullable=True))
    op.add_column("event_items", sa.Column("peak_per_user_limit", sa.Integer(), nullable=True))
    op.add_column(
        "event_items",
        sa.Column("terms_version", sa.Integer(), server_default="0", nullable=False),
    )
    op.execute("UPDATE event_items SET peak_per_user_limit = per_user_limit")
    op.alter_column("event_items", "peak_per_user_limit", nullable=False)
    op.create_check_constraint(
        op.f("ck_event_items_low_stock_threshold_not_negative"),
        "event_items",
        "low_stock_threshold >= 0",
    )


def downgrade() -> None:
    op.drop_constraint(
        op.f("ck_event_items_low_stock_threshold_not_negative"), "event_items", type_="check"
    )
    op.drop_column("event_items", "terms_version")
    op.drop_column("event_items", "peak_per_user_limit")
    op.drop_column("event_items", "low_stock_threshold")
    op.drop_index("ix_operator_actions_event_id_id", table_name="operator_actions")
    op.drop_table("operator_actions")
