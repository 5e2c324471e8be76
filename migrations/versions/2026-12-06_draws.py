"""draws: a draw-mode event's committed seed and outcome, and its registrations

Revision ID: i20_2
Revises: i20_1
Create Date: 2026-12-06 11:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "i20_2"
down_revision: str | None = "i20_1"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "draws",
        sa.Column("event_id", sa.BigInteger(), nullable=False),
        sa.Column("seed", sa.String(length=64), nullable=False),
        sa.Column("seed_commitment", sa.String(length=64), nullable=False),
        sa.Column("drawn_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("registrants_count", sa.Integer(), nullable=True),
        sa.Column("winners_count", sa.Integer(), nullable=True),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.CheckConstraint(
            "(drawn_at IS NULL) = (winners_count IS NULL) AND "
            "(drawn_at IS NULL) = (registrants_count IS NULL)",
            name=op.f("ck_draws_drawn_with_counts"),
        ),
        sa.ForeignKeyConstraint(["event_id"], ["events.id"], name=op.f("fk_draws_event_id_events")),
        sa.PrimaryKeyConstraint("event_id", name=op.f("pk_draws")),
    )
    op.create_table(
        "draw_registrations",
        sa.Column("event_id", sa.BigInteger(), nullable=False),
        sa.Column("user_id", sa.String(length=128), nullable=False),
        sa.Column(
            "registered_at",
            sa.DateTime(timezone=True),
            server_default=sa.func.now(),
            nullable=False,
        ),
        sa.Column("outcome", sa.SmallInteger(), server_default="0", nullable=False),
        sa.ForeignKeyConstraint(
            ["event_id"], ["draws.event_id"], name=op.f("fk_draw_registrations_event_id_draws")
        ),
        sa.PrimaryKeyConstraint("event_id", "user_id", name=op.f("pk_draw_registrations")),
    )


def downgrade() -> None:
    op.drop_table("draw_registrations")
    op.drop_table("draws")
