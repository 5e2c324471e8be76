"""member price and reserve: items' member price and member-only units; orders' member flag

Revision ID: i21_1
Revises: i20_3
Create Date: 2026-12-06 17:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "i21_1"
down_revision: str | None = "i20_3"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("event_items", sa.Column("member_price", sa.Numeric(12, 2), nullable=True))
    op.add_column(
        "event_items",
        sa.Column("member_reserved", sa.Integer(), server_default="0", nullable=False),
    )
    op.add_column(
        "event_items",
        sa.Column("member_reserved_until", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_check_constraint(
        op.f("ck_event_items_member_price_positive"), "event_items", "member_price > 0"
    )
    op.create_check_constraint(
        op.f("ck_event_items_member_reserved_in_stock"),
        "event_items",
        "member_reserved >= 0 AND member_reserved <= stock",
    )
    # Orders placed before members were told apart count as non-members' (as they paid).
    op.add_column(
        "orders", sa.Column("member", sa.Boolean(), server_default=sa.false(), nullable=False)
    )


def downgrade() -> None:
    op.drop_column("orders", "member")
    for name in ("member_reserved_in_stock", "member_price_positive"):
        op.drop_constraint(op.f(f"ck_event_items_{name}"), "event_items", type_="check")
    op.drop_column("event_items", "member_reserved_until")
    op.drop_column("event_items", "member_reserved")
    op.drop_column("event_items", "member_price")
